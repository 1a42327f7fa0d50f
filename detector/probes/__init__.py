"""Synthetic journeys: multi-step HTTP probes of the shop, run on a schedule from every location,
whose failures reach the engine as signals (source ``probe``) like Alertmanager's alerts."""
