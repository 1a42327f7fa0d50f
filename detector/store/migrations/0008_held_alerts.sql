-- An alert an open incident holds stays with that incident until it resolves, whatever later rule
-- edits say; finding the incidents that hold an occurrence needs this index.
CREATE INDEX incident_alerts_occurrence ON incident_alerts (fingerprint, starts_at);
