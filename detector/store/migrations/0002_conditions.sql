-- Rule conditions (for, thresholds, absence, heartbeats, all-of) keep their state per
-- (rule, group) here, and their check timers belong to a group rather than an incident.

CREATE TABLE conditions (
    rule         text        NOT NULL,
    group_key    text        NOT NULL,
    group_labels jsonb       NOT NULL,
    state        jsonb       NOT NULL,
    check_at     timestamptz,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (rule, group_key)
);

ALTER TABLE timers ALTER COLUMN incident_id DROP NOT NULL;
ALTER TABLE timers ADD COLUMN rule text;
ALTER TABLE timers ADD COLUMN group_key text;
ALTER TABLE timers ADD CONSTRAINT timers_have_a_subject
    CHECK (incident_id IS NOT NULL OR (rule IS NOT NULL AND group_key IS NOT NULL));
