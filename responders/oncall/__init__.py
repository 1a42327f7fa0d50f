"""On-call: people, schedules (layers, restrictions, overrides) and who is on call at time t."""
