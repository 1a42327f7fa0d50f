-- Escalation to people: which run of the chain an incident is in (a policy's `repeat`), when its
-- current step paged (so a missing timer is put back at the time it was due, not early), and
-- when the self-audit last looked at it (each cycle audits the incidents it looked at longest ago).
ALTER TABLE incidents ADD COLUMN escalation_round integer NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN escalated_at timestamptz;
ALTER TABLE incidents ADD COLUMN audited_at timestamptz;
UPDATE incidents SET escalated_at = opened_at WHERE state <> 'resolved';
CREATE INDEX incidents_audit ON incidents (audited_at NULLS FIRST) WHERE state <> 'resolved';
CREATE INDEX timers_pending_incident ON timers (incident_id, epoch) WHERE fired_at IS NULL;
