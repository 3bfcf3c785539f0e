-- Per-account cgroups (issue 4, PHASE5-SPEC.md Task 1.1): the desired state the
-- reconciler makes the kernel match, and the events limit hits turn into.
--
-- No foreign key to an accounts table (the original draft's key pointed at a
-- table that did not exist); account ids follow cgroupd's pattern instead.

CREATE TABLE cgroup_configs (
    account_id  text        PRIMARY KEY CHECK (account_id ~ '^[a-z][a-z0-9_-]{0,31}$'),
    package     text        NOT NULL,
    -- npanel.cgroupd.model.Limits as JSON: every field resolved.
    limits      jsonb       NOT NULL,
    frozen      boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cgroup_events (
    id          bigserial   PRIMARY KEY,
    account_id  text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('created', 'updated', 'deleted', 'frozen', 'thawed',
                                                     'limit_exceeded', 'oom_kill', 'recovery',
                                                     'unknown_group')),
    resource    text        NOT NULL DEFAULT '' CHECK (resource IN ('memory', 'pids', 'cpu', 'io', '')),
    severity    text        NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    message     text        NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX cgroup_events_account ON cgroup_events (account_id, id);
CREATE INDEX cgroup_events_created_at ON cgroup_events (created_at);
