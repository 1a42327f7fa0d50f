-- The alert names in each intake log record, so the engine can expand a record ahead of older
-- ones that no rule it could reach also sees (an unrelated alert behind a storm). NULL: written
-- before the names were kept; such a record is never taken ahead, nor anything behind it.
ALTER TABLE intake_log ADD COLUMN alertnames text[];
