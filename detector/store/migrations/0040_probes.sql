-- Synthetic journeys: one row per (journey, location). Claiming a due run moves next_due_at
-- to the next slot in the same statement, so each journey runs once per interval at each
-- location however many replicas run there. The row also keeps the failure and success
-- streaks that decide when the journey fires, and the last results people look at.

CREATE TABLE probes (
    journey       text        NOT NULL,
    location      text        NOT NULL,
    next_due_at   timestamptz NOT NULL,
    claimed_by    text,
    claimed_at    timestamptz,
    failures      integer     NOT NULL DEFAULT 0,
    successes     integer     NOT NULL DEFAULT 0,
    failing_since timestamptz,
    firing_since  timestamptz,
    last_run_at   timestamptz,
    last_success  boolean,
    last_result   jsonb,
    last_failure  jsonb,
    PRIMARY KEY (journey, location)
);
