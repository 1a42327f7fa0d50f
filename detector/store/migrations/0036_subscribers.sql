-- Who hears about public incidents: email addresses (double opt-in) and webhooks, each for
-- every component or a chosen few, and their own delivery queue (the notice fan-out can be
-- hundreds of thousands of rows, kept apart from the incident outbox and its timeline).
CREATE TABLE subscribers (
    id           bigserial PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('email', 'webhook')),
    address      text        NOT NULL,
    components   text[]      NOT NULL DEFAULT '{}',
    -- Confirms and unsubscribes; in every mail and webhook, never in logs.
    token        text        NOT NULL UNIQUE,
    -- The webhook's HMAC key (NULL for email).
    secret       text,
    created_at   timestamptz NOT NULL,
    confirmed_at timestamptz,
    UNIQUE (kind, address)
);
CREATE INDEX subscribers_confirmed ON subscribers (id) WHERE confirmed_at IS NOT NULL;

CREATE TABLE subscriber_outbox (
    id              bigserial PRIMARY KEY,
    subscriber_id   bigint      NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
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
CREATE INDEX subscriber_outbox_due ON subscriber_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX subscriber_outbox_subscriber ON subscriber_outbox (subscriber_id);
