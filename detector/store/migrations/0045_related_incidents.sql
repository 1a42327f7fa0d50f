-- Incidents of one component opened close together list each other as related. Each link is
-- stored both ways, so either incident reads its list with one index scan.
CREATE TABLE related_incidents (
    incident_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    related_id  bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    linked_at   timestamptz NOT NULL,
    PRIMARY KEY (incident_id, related_id),
    CHECK (incident_id <> related_id)
);
CREATE INDEX related_incidents_related ON related_incidents (related_id);

-- The incidents a newly opened one may be related to: same component, opened recently.
CREATE INDEX incidents_component_opened ON incidents (component, opened_at)
    WHERE component IS NOT NULL;
