"""Pure decisions and frozen types: incidents, muting, grouping; no I/O."""
