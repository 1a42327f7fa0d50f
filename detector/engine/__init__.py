"""The engine cycle and its stages: signals, timers, delivery."""
