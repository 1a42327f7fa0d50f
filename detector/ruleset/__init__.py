"""Rule files: schema, loading with file/line errors, and pure matching."""
