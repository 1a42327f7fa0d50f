-- Core tables: signals (the durable inbox), incidents with their alerts and timeline,
-- durable timers and the delivery outbox.

CREATE TABLE signals (
    id               bigserial PRIMARY KEY,
    source           text        NOT NULL,
    name             text        NOT NULL,
    fingerprint      text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz,
    labels           jsonb       NOT NULL,
    annotations      jsonb       NOT NULL,
    group_key        text        NOT NULL DEFAULT '',
    receiver         text        NOT NULL DEFAULT '',
    received_at      timestamptz NOT NULL,
    last_received_at timestamptz NOT NULL,
    processed_at     timestamptz,
    outcome          text,
    -- An alert occurrence is (fingerprint, startsAt); each status of it is stored once, so a
    -- replayed webhook inserts nothing and only refreshes last_received_at.
    UNIQUE (source, fingerprint, starts_at, status)
);
CREATE INDEX signals_unprocessed ON signals (id) WHERE processed_at IS NULL;
CREATE INDEX signals_unmatched ON signals (id DESC) WHERE outcome = 'unmatched';
CREATE INDEX signals_occurrence ON signals (fingerprint, starts_at);

CREATE TABLE incidents (
    id               bigserial PRIMARY KEY,
    rule             text        NOT NULL,
    group_key        text        NOT NULL,
    group_labels     jsonb       NOT NULL,
    state            text        NOT NULL CHECK (state IN ('triggered', 'acknowledged', 'resolved')),
    severity         text        NOT NULL,
    title            text        NOT NULL,
    summary          text        NOT NULL,
    component        text,
    policy           jsonb,
    epoch            integer     NOT NULL DEFAULT 0,
    escalation_step  integer     NOT NULL DEFAULT 0,
    opened_at        timestamptz NOT NULL,
    last_signal_at   timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    updated_at       timestamptz NOT NULL
);
-- At most one open incident per (rule, group); concurrent opens resolve with ON CONFLICT.
CREATE UNIQUE INDEX incidents_one_open ON incidents (rule, group_key) WHERE state <> 'resolved';
CREATE INDEX incidents_recent ON incidents (rule, group_key, resolved_at DESC);
CREATE INDEX incidents_state ON incidents (state, id DESC);

CREATE TABLE incident_alerts (
    incident_id  bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    fingerprint  text        NOT NULL,
    starts_at    timestamptz NOT NULL,
    status       text        NOT NULL,
    ends_at      timestamptz,
    labels       jsonb       NOT NULL,
    last_seen_at timestamptz NOT NULL,
    PRIMARY KEY (incident_id, fingerprint, starts_at)
);

CREATE TABLE timeline (
    id          bigserial PRIMARY KEY,
    incident_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    kind        text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_incident ON timeline (incident_id, id);

CREATE TABLE timers (
    id          bigserial PRIMARY KEY,
    incident_id bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    kind        text        NOT NULL,
    due_at      timestamptz NOT NULL,
    epoch       integer     NOT NULL,
    payload     jsonb       NOT NULL DEFAULT '{}',
    lease_owner text,
    lease_until timestamptz,
    fired_at    timestamptz,
    outcome     text
);
CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL;

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    incident_id     bigint      NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    channel         text        NOT NULL,
    kind            text        NOT NULL,
    payload         jsonb       NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    state           text        NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_owner     text,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';

CREATE TABLE rejected_webhooks (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    field       text        NOT NULL,
    reason      text        NOT NULL,
    body        text        NOT NULL
);

-- Generated secrets shared by every replica (the ack-link signing key when none is configured).
CREATE TABLE service_secrets (
    name  text PRIMARY KEY,
    value text NOT NULL
);
