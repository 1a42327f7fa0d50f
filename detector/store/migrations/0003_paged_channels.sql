-- The channels an incident actually paged (a page held by a maintenance window does not count),
-- so acknowledgements and resolutions go only to people who were told about the incident.
ALTER TABLE incidents ADD COLUMN paged_channels jsonb NOT NULL DEFAULT '[]';
