-- watchdogd (issue 5): what a watchdogd restart must not forget about a target.
--
-- GAVE_UP waits for an operator's reset, and the hourly restart limit counts
-- restarts, whether or not watchdogd itself was restarted in between. One row
-- per target that has restarted or given up; no row = fresh counters.
-- The row goes with its target; a reset deletes it (audited by the store in
-- the same transaction as target.reset).

CREATE TABLE watchdog_target_state (
    name       text          PRIMARY KEY REFERENCES watchdog_targets (name) ON DELETE CASCADE,
    gave_up    boolean       NOT NULL DEFAULT false,
    -- When each restart of the last hour happened, oldest first.
    restarts   timestamptz[] NOT NULL DEFAULT '{}',
    -- Consecutive restarts that did not bring it back (the backoff exponent).
    attempt    integer       NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    updated_at timestamptz   NOT NULL DEFAULT now()
);
