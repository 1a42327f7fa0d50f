-- A signal whose rule group failed to apply (a deadlock with another replica, say) stays queued
-- and is tried again, in the rules it failed in only (the others already have it); after a few
-- quick tries it waits longer between them, so a group that keeps failing costs little.
ALTER TABLE pending_signals
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN retry_rules text[],
    ADD COLUMN not_before timestamptz;
