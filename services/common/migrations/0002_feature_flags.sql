-- Feature flags (PHASE5-SPEC.md Task 1.5): the fifteen platform flags, all
-- disabled, and the history of every toggle.
--
-- revision comes from one sequence shared by all flags, so "what changed after
-- revision N" is one indexed query, and a replica that missed notifications
-- catches up by asking it.

CREATE SEQUENCE feature_flag_revision;

CREATE TABLE feature_flags (
    name            text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,63}$'),
    description     text        NOT NULL,
    track           text        NOT NULL CHECK (track IN ('A', 'B', 'C')),
    enabled         boolean     NOT NULL DEFAULT false,
    -- Share of accounts that see an enabled flag on; 100 = everyone.
    rollout_percent smallint    NOT NULL DEFAULT 100 CHECK (rollout_percent BETWEEN 0 AND 100),
    required        boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    revision        bigint      NOT NULL DEFAULT nextval('feature_flag_revision')
);

CREATE INDEX feature_flags_revision ON feature_flags (revision);

CREATE TABLE feature_flag_toggles (
    id             bigserial   PRIMARY KEY,
    feature_name   text        NOT NULL REFERENCES feature_flags (name),
    actor          text        NOT NULL CHECK (actor <> ''),
    action         text        NOT NULL CHECK (action IN ('enabled', 'disabled', 'rollout', 'rollback')),
    previous_state jsonb       NOT NULL,
    new_state      jsonb       NOT NULL,
    reason         text        NOT NULL CHECK (reason <> ''),
    request_id     text,
    revision       bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX feature_flag_toggles_flag ON feature_flag_toggles (feature_name, id DESC);
CREATE INDEX feature_flag_toggles_created_at ON feature_flag_toggles (created_at);

-- The toggle history is evidence too: append-only, like audit_log.
CREATE TRIGGER feature_flag_toggles_immutable BEFORE UPDATE OR DELETE ON feature_flag_toggles
    FOR EACH ROW EXECUTE FUNCTION npanel_audit_refuse_change();
CREATE TRIGGER feature_flag_toggles_no_truncate BEFORE TRUNCATE ON feature_flag_toggles
    FOR EACH STATEMENT EXECUTE FUNCTION npanel_audit_refuse_change();

INSERT INTO feature_flags (name, track, description) VALUES
    ('cgroups_isolation',   'A', 'Per-account cgroup v2 resource isolation'),
    ('email_rate_limiting', 'A', 'Per-account outgoing email rate limits'),
    ('agent_watchdog',      'A', 'Watchdog health checks and automatic recovery'),
    ('graceful_reloads',    'A', 'Zero-downtime service reloads'),
    ('config_layering',     'A', 'Upgrade-safe configuration layers'),
    ('soak_testing',        'A', 'Long-run soak testing and failure injection'),
    ('package_templates',   'B', 'Hosting package templates'),
    ('quota_enforcement',   'B', 'Resource quota enforcement'),
    ('reseller_hierarchy',  'B', 'Reseller account hierarchy'),
    ('whmcs_integration',   'B', 'WHMCS-compatible provisioning API'),
    ('progress_tracking',   'C', 'Restore progress and ETA'),
    ('health_scoring',      'C', 'Migration health scoring'),
    ('audit_logs_v2',       'C', 'Clearer audit and action logs'),
    ('smart_defaults',      'C', 'Smarter security and performance defaults'),
    ('upgrade_framework',   'C', 'Predictable upgrades');
