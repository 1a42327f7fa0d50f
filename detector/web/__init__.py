"""HTTP surface: the Alertmanager webhook, the incident API, ack links and operations endpoints."""
