"""A small shop to break: a JSON storefront (catalogue, cart, checkout, sandbox payment, order
confirmation), metrics shaped like the exporters the shipped Prometheus rules read, and fault
switches (``POST /faults``) for the outages those rules and a checkout journey should catch.

It is the system under observation, not part of detection: nothing here imports the rest of
``detector`` but the CLI's HTTP client, so the shop runs the same with or without Stormwatch.
``stormwatch demo-shop`` runs it.
"""
