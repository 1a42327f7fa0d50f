"""All SQL: one module per table or aggregate, each table written by exactly one module.

- ``connection``: the connection type, json codecs, the readiness probe, statement row counts.
- ``locks``: every advisory-lock id, and taking one for the transaction.
- ``incidents``: incidents and incident_alerts (load, lock, apply a decision).
- ``timeline``: timeline.
- ``timers``: timers (incident timers and condition checks; claim, fire, prune).
- ``outbox``: outbox (queue pages, lease, record delivery, supersede, prune).
- ``signals``: signals and pending_signals (store, queue, adopt, prune).
- ``intake_log``: intake_log and rejected_webhooks.
- ``conditions``: conditions.
- ``public_incidents``: public_incidents, public_incident_updates and public_incident_links
  (open or join, leave, publish updates and postmortems).
- ``component_status``: component_statuses (statuses a person set).
- ``probes``: probes (journey schedule, streaks and last results per location).
- ``related``: related_incidents (links between incidents of one component opened close together).
- ``supersedes``: supersedes (which open incident holds back which, by the rules'
  ``supersedes:``).
- ``impact``: impact_samples (an open incident's order and revenue rates beside their baseline).
- ``notice_drafts``: notice_drafts (first notices held for a veto window or a person).
- ``subscribers``: subscribers (email and webhook subscriptions; confirm, erase, batches).
- ``subscriber_outbox``: subscriber_outbox (queue in batches, lease, record, prune).
- ``oncall_overrides``: oncall_overrides (overrides made through the API and the CLI).
- ``secrets``: service_secrets.
- ``migrate``: schema_migrations, and the migrations/*.sql files it applies.
- ``audit``: no table; the self-audit's reads, its repairs through ``timers``.
- ``queries``: no table; read-only views for the API, the CLI and the open-incidents gauge.
- ``retention``: no table; paces the owners' prune functions.
- ``wakeup``: no table; LISTEN/NOTIFY on intake commits and public changes.
- ``embedded``: no table; the embedded PostgreSQL server.
"""
