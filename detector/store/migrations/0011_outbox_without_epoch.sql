-- A page's epoch is read from its idempotency key (incident:epoch:…). A database that took an
-- earlier form of 0009, which kept it in a column of its own, drops that column here; the
-- pages it stored keep their epoch in their key.
ALTER TABLE outbox DROP COLUMN IF EXISTS epoch;
