-- Whether a rule matched is known before a signal is stored, so it becomes a flag on the row
-- instead of a second table whose foreign-key check locked each signal row. Replays of unmatched
-- alerts then cost no write at all, and spare room on each page lets replays of matched alerts
-- refresh last_received_at in place (a HOT update, no new index entries).
ALTER TABLE signals ADD COLUMN unmatched boolean NOT NULL DEFAULT false;
UPDATE signals SET unmatched = true WHERE id IN (SELECT signal_id FROM unmatched_signals);
DROP TABLE unmatched_signals;
CREATE INDEX signals_unmatched ON signals (id) WHERE unmatched;
ALTER TABLE signals SET (fillfactor = 80);
