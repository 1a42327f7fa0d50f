-- The inbox is written for every alert Alertmanager sends, so keep each row cheap to store:
-- labels and annotations are kept as json (validated, not re-encoded as jsonb), and one unique
-- index leading with (fingerprint, starts_at) serves both deduplication and occurrence look-ups.
ALTER TABLE signals
    ALTER COLUMN labels TYPE json USING labels::json,
    ALTER COLUMN annotations TYPE json USING annotations::json;
ALTER TABLE signals DROP CONSTRAINT signals_source_fingerprint_starts_at_status_key;
ALTER TABLE signals ADD CONSTRAINT signals_occurrence_status
    UNIQUE (fingerprint, starts_at, status, source);
DROP INDEX signals_occurrence;
