"""The public status page: what customers see, in Statuspage's shapes. Pure: no I/O.

- ``model``: the frozen public records (page, components, public incidents and their updates,
  maintenance) and Statuspage's enums.
- ``levels``: what each component shows and the page's overall indicator.
- ``documents``: the Statuspage v2 JSON documents and the storefront banner.
- ``html``: the HTML page (autoescaped, sandboxed Jinja2; ``templates/status.html``).
- ``feeds``: the Atom and RSS incident history.
"""
