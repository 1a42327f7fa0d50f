"""HTTP surface: the Alertmanager webhook, the incident API, ack links and operations endpoints,
the public status page and the component status API."""
