-- watchdogd (issue 5, PHASE5-SPEC.md Task 1.3): the targets it keeps alive and
-- an incident row per failure.
--
-- A target's check, driver and policy are one jsonb document validated by
-- npanel.watchdogd.model (the single place that knows their shape).

CREATE TABLE watchdog_targets (
    name       text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,63}$'),
    spec       jsonb       NOT NULL,
    source     text        NOT NULL CHECK (source IN ('api', 'config', 'default')),
    paused     boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- No foreign key to watchdog_targets: an incident outlives the target it was about.
CREATE TABLE agent_failures (
    id               bigserial   PRIMARY KEY,
    target           text        NOT NULL,
    detected_at      timestamptz NOT NULL,
    failure_type     text        NOT NULL
                     CHECK (failure_type IN ('crash', 'hang', 'unhealthy', 'start_failure')),
    evidence         text        NOT NULL,
    last_log_lines   text[]      NOT NULL,
    restart_count    integer     NOT NULL DEFAULT 0 CHECK (restart_count >= 0),
    recovered_at     timestamptz,
    recovery_seconds double precision CHECK (recovery_seconds >= 0),
    resolved         boolean     NOT NULL DEFAULT false,
    gave_up          boolean     NOT NULL DEFAULT false
);

CREATE INDEX agent_failures_target ON agent_failures (target, id DESC);
CREATE INDEX agent_failures_unresolved ON agent_failures (id) WHERE NOT resolved;

-- What was seen is evidence: append-only. Only the outcome columns may change
-- (restart_count, gave_up, recovered_at, recovery_seconds, resolved), and a
-- resolved incident is closed for good.
CREATE FUNCTION npanel_agent_failures_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'agent_failures is append-only: % is refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.target, NEW.detected_at, NEW.failure_type, NEW.evidence, NEW.last_log_lines)
       IS DISTINCT FROM (OLD.target, OLD.detected_at, OLD.failure_type, OLD.evidence, OLD.last_log_lines)
       OR OLD.resolved THEN
        RAISE EXCEPTION 'agent_failures row %: evidence columns and resolved incidents never change', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER agent_failures_guard BEFORE UPDATE OR DELETE ON agent_failures
    FOR EACH ROW EXECUTE FUNCTION npanel_agent_failures_guard();
CREATE TRIGGER agent_failures_no_truncate BEFORE TRUNCATE ON agent_failures
    FOR EACH STATEMENT EXECUTE FUNCTION npanel_audit_refuse_change();
