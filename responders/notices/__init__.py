"""What customers are told about an outage, and when: notice kinds and the public lifecycle,
the sandboxed notice templates, the jargon lint that keeps internal words out of them, and the
update cadence that makes every promised update happen. Pure: no database, no network."""
