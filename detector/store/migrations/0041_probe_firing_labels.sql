-- The labels of a journey's standing signal, so that the signal can be resolved when the
-- journey is removed from the rules or switched off and no run will ever resolve it.

ALTER TABLE probes ADD COLUMN firing_labels jsonb;
