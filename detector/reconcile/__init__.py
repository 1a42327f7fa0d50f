"""Reconciliation with Alertmanager's API: vanished alerts and adopted strays."""
