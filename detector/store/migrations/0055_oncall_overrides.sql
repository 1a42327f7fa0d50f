-- Overrides made at 3 a.m. through the API or the CLI: "Bob covers primary until 08:00". They
-- win over the overrides written in the on-call files. A deleted override is kept (who deleted
-- it and when), so the history of who was on call stays explainable.
CREATE TABLE oncall_overrides (
    id          bigserial PRIMARY KEY,
    schedule    text        NOT NULL,
    person      text        NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    deleted_by  text,
    deleted_at  timestamptz,
    CHECK (ends_at > starts_at)
);
CREATE INDEX oncall_overrides_live ON oncall_overrides (schedule, ends_at) WHERE deleted_at IS NULL;
