-- Business impact: each minute of an open incident, the order (and revenue) rate measured in the
-- shop's Prometheus beside its baseline; a sample that could not be measured keeps the reason.
-- The figures at risk are summed from these samples, and the report charts them.
CREATE TABLE impact_samples (
    incident_id      bigint           NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at               timestamptz      NOT NULL,
    order_rate       double precision,
    order_baseline   double precision,
    revenue_rate     double precision,
    revenue_baseline double precision,
    unknown_reason   text,
    PRIMARY KEY (incident_id, at)
);
