"""Wiring only: the app, the serve command, the engine process, settings, logs, metrics, clock."""
