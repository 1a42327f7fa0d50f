"""Signals in: the Alertmanager webhook model, group commit and the replay memo."""
