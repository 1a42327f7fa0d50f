-- First notices not yet public: held for a veto window (publish_at set) or waiting for a person
-- to publish them (publish_at NULL). A published or vetoed draft is kept for the record.
CREATE TABLE notice_drafts (
    incident_id      bigint      PRIMARY KEY REFERENCES incidents (id) ON DELETE CASCADE,
    component        text        NOT NULL,
    component_status text        NOT NULL,
    name             text        NOT NULL,
    body             text        NOT NULL,
    next_update_at   timestamptz NOT NULL,
    publish_at       timestamptz,
    created_at       timestamptz NOT NULL,
    edited_by        text,
    edited_at        timestamptz,
    vetoed_by        text,
    vetoed_at        timestamptz,
    published_at     timestamptz
);
CREATE INDEX notice_drafts_pending ON notice_drafts (incident_id)
    WHERE published_at IS NULL AND vetoed_at IS NULL;
