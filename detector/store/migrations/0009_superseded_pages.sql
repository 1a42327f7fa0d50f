-- A page queued for one episode of an incident must not go out once the incident has moved on:
-- acknowledge, resolve and reopen each bump its epoch (the second part of a page's
-- idempotency key). A page still waiting (for a retry, say) when the epoch moves on ends as
-- 'superseded' instead of waking someone for an incident that no longer needs them.
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check
    CHECK (state IN ('pending', 'delivered', 'dead', 'superseded'));
