-- Storm bundling: past a limit of calls to act per person within a window, the rest of that
-- person's pages go out bundled into one digest. Each page records when its way out was decided
-- (one by one or bundled), under a per-person advisory lock, so every replica counts the same
-- pages: those sent one by one to any of the person's contact methods within the window.
ALTER TABLE outbox ADD COLUMN dispatched_at timestamptz;
ALTER TABLE outbox ADD COLUMN bundled boolean NOT NULL DEFAULT false;
CREATE INDEX outbox_sent_alone ON outbox (channel, dispatched_at)
    WHERE dispatched_at IS NOT NULL AND NOT bundled;
