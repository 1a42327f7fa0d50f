"""The public status page: what customers see, in Statuspage's shapes.

- ``model``: the frozen public records (components, public incidents and their updates) and the
  Statuspage enums.
"""
