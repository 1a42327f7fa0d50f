-- What customers see: public incidents (one open per component, whatever internal incidents
-- joined it), their published updates, the link from each internal incident to the public one
-- it joined, and component statuses a person set by hand.

CREATE TABLE public_incidents (
    id                      bigserial PRIMARY KEY,
    -- Random, shortlink-safe; the only id a public document shows (never the internal id).
    public_id               text        NOT NULL UNIQUE CHECK (public_id ~ '^[a-z0-9]{12}$'),
    component               text        NOT NULL,
    name                    text        NOT NULL,
    status                  text        NOT NULL CHECK (status IN
                                ('investigating', 'identified', 'monitoring', 'resolved', 'postmortem')),
    impact                  text        NOT NULL CHECK (impact IN ('none', 'minor', 'major', 'critical')),
    components              text[]      NOT NULL,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    monitoring_at           timestamptz,
    resolved_at             timestamptz,
    postmortem_body         text,
    postmortem_published_at timestamptz
);
-- One outage, one public incident: at most one open per component; concurrent opens join.
CREATE UNIQUE INDEX public_incidents_one_open ON public_incidents (component)
    WHERE resolved_at IS NULL;
CREATE INDEX public_incidents_recent ON public_incidents (created_at DESC);

CREATE TABLE public_incident_updates (
    id                  bigserial PRIMARY KEY,
    public_id           text        NOT NULL UNIQUE CHECK (public_id ~ '^[a-z0-9]{12}$'),
    public_incident_id  bigint      NOT NULL REFERENCES public_incidents (id) ON DELETE CASCADE,
    status              text        NOT NULL CHECK (status IN
                            ('investigating', 'identified', 'monitoring', 'resolved', 'postmortem')),
    body                text        NOT NULL,
    created_at          timestamptz NOT NULL,
    display_at          timestamptz NOT NULL,
    next_update_at      timestamptz,
    -- [{"component": name, "old_status": level, "new_status": level}] at this update.
    affected_components jsonb       NOT NULL DEFAULT '[]'
);
CREATE INDEX public_incident_updates_incident ON public_incident_updates (public_incident_id, id);

CREATE TABLE public_incident_links (
    incident_id        bigint      PRIMARY KEY REFERENCES incidents (id) ON DELETE CASCADE,
    public_incident_id bigint      NOT NULL REFERENCES public_incidents (id) ON DELETE CASCADE,
    component          text        NOT NULL,
    -- The level this internal incident means for its component, from its rule.
    component_status   text        NOT NULL CHECK (component_status IN
                           ('degraded_performance', 'partial_outage', 'major_outage')),
    joined_at          timestamptz NOT NULL,
    -- When the internal incident resolved; the public incident resolves after its last link.
    left_at            timestamptz
);
CREATE INDEX public_incident_links_open ON public_incident_links (public_incident_id)
    WHERE left_at IS NULL;

CREATE TABLE component_statuses (
    component text        PRIMARY KEY,
    status    text        NOT NULL CHECK (status IN ('operational', 'degraded_performance',
                  'partial_outage', 'major_outage', 'under_maintenance')),
    set_by    text        NOT NULL,
    set_at    timestamptz NOT NULL,
    reason    text        NOT NULL DEFAULT ''
);
