"""``stormwatch rules test``: rule unit tests in the spirit of ``promtool test rules``."""
