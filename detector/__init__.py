"""Stormwatch detector: monitoring signals in, durable incidents out."""
