-- Alert storms: the cost of a signal must not grow with the size of its group.
--
-- 1. A rule condition's waiting alerts (members) get a row each, so a batch reads and writes only
--    the members it touches; conditions.state keeps the rest (a tally of the members, the
--    condition's own fields). Existing states move their members here; their tally is rebuilt
--    from the members the first time the group is evaluated (no basis recorded yet).
CREATE TABLE condition_members (
    rule      text        NOT NULL,
    group_key text        NOT NULL,
    seq       bigserial,
    key       text        NOT NULL,
    at        timestamptz NOT NULL,
    value     text        NOT NULL DEFAULT '',
    signal    json        NOT NULL,
    PRIMARY KEY (rule, group_key, seq)
);
CREATE UNIQUE INDEX condition_members_key ON condition_members (rule, group_key, key);
CREATE INDEX condition_members_at ON condition_members (rule, group_key, at, seq);

INSERT INTO condition_members (rule, group_key, key, at, signal)
SELECT c.rule, c.group_key, p.key, (p.value ->> 'since')::timestamptz, (p.value -> 'signal')::json
FROM conditions c, jsonb_each(c.state -> 'pending') WITH ORDINALITY AS p (key, value, n)
ORDER BY c.rule, c.group_key, p.n;

INSERT INTO condition_members (rule, group_key, key, at, value, signal)
SELECT c.rule, c.group_key,
       (e.value -> 'signal' ->> 'fingerprint') || '@' || (e.value -> 'signal' ->> 'starts_at'),
       (e.value ->> 'at')::timestamptz, e.value ->> 'value', (e.value -> 'signal')::json
FROM conditions c, jsonb_array_elements(c.state -> 'events') WITH ORDINALITY AS e (value, n)
ORDER BY c.rule, c.group_key, e.n
ON CONFLICT DO NOTHING;

UPDATE conditions c SET state = (c.state - 'pending' - 'events') || jsonb_build_object(
    'tally', jsonb_build_object(
        'part', CASE WHEN c.state ? 'events' THEN 'events' ELSE 'pending' END,
        'count', (SELECT count(*) FROM condition_members m
                  WHERE m.rule = c.rule AND m.group_key = c.group_key)))
WHERE c.state ? 'pending' OR c.state ? 'events';

-- 2. The signals of a group that got more than its share of one engine cycle wait here, in
--    arrival order, for the group's next slice; other groups' signals go ahead meanwhile.
CREATE TABLE group_backlog (
    rule      text   NOT NULL,
    group_key text   NOT NULL,
    signal_id bigint NOT NULL REFERENCES signals (id) ON DELETE CASCADE,
    PRIMARY KEY (rule, group_key, signal_id)
);
CREATE INDEX group_backlog_signal ON group_backlog (signal_id);

-- 3. Whether an incident still holds a firing alert is one index probe, not a read of them all.
CREATE INDEX incident_alerts_firing ON incident_alerts (incident_id) WHERE status = 'firing';
