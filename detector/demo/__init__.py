"""``stormwatch demo``: the whole story on one machine, from a fault in the demo shop to the
post-incident report, told live in the terminal with the times it took measured."""
