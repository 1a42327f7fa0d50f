-- An incident of a superseding rule and the incidents it holds back while open (a rule's
-- `supersedes:`). Directed, unlike related_incidents: "which open incidents does this ack
-- cover" reads one side, "what holds this one back" the other.
CREATE TABLE supersedes (
    superseding_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    superseded_id  bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    linked_at      timestamptz NOT NULL,
    PRIMARY KEY (superseding_id, superseded_id),
    CHECK (superseding_id <> superseded_id)
);
CREATE INDEX supersedes_superseded ON supersedes (superseded_id);

-- The escalations an open superseding incident defers, found by its id when it resolves.
CREATE INDEX timers_superseded_by ON timers ((payload ->> 'superseded_by'))
    WHERE fired_at IS NULL AND payload ? 'superseded_by';
