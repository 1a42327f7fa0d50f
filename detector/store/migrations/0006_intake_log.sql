-- Accepted webhooks land here first, one row per group commit holding the request bodies as
-- received, so answering Alertmanager costs one small write whatever the alert count; the engine
-- expands rows into deduplicated signals and deletes them. Bodies are stored uncompressed:
-- compressing them would cost the intake path CPU to save space held for seconds.
CREATE TABLE intake_log (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    requests    integer NOT NULL,
    alerts      integer NOT NULL,
    bodies      bytea NOT NULL
);
ALTER TABLE intake_log ALTER COLUMN bodies SET STORAGE EXTERNAL;
