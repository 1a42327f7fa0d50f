-- Work still to do for the engine is a narrow queue of ids, so the wide inbox row is written once
-- and never updated; unmatched signals are listed from their own small table.
CREATE TABLE pending_signals (signal_id bigint PRIMARY KEY);
INSERT INTO pending_signals SELECT id FROM signals WHERE processed_at IS NULL;

CREATE TABLE unmatched_signals (
    signal_id bigint PRIMARY KEY REFERENCES signals (id) ON DELETE CASCADE
);
INSERT INTO unmatched_signals SELECT id FROM signals WHERE outcome = 'unmatched';

DROP INDEX signals_unprocessed;
DROP INDEX signals_unmatched;
ALTER TABLE signals DROP COLUMN processed_at, DROP COLUMN outcome;
