-- audit_log: append-only and hash-chained.
--
-- Every change the API acknowledges writes one row here in the same transaction
-- as the change. Row N stores the hash of row N-1 (prev_hash) and its own hash
-- over its contents and prev_hash (row_hash), so an edited, deleted or inserted
-- row breaks the chain and npanel_audit_verify() reports where.
--
-- The id and both hashes are assigned by the BEFORE INSERT trigger, under a
-- transaction-scoped advisory lock, so concurrent writers chain in commit order
-- and a rolled-back transaction leaves no gap. Callers should insert the audit
-- row as the last statement of their transaction: the lock is held until commit.

CREATE TABLE audit_log (
    id          bigint      PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL CHECK (actor <> ''),
    action      text        NOT NULL CHECK (action <> ''),
    target_type text        NOT NULL CHECK (target_type <> ''),
    target_id   text        NOT NULL,
    request_id  text,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    prev_hash   bytea       NOT NULL,
    row_hash    bytea       NOT NULL
);

CREATE INDEX audit_log_target ON audit_log (target_type, target_id, id);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);

-- The canonical text of a row: a JSON array of its fields in a fixed order, which
-- is unambiguous (no separator can be forged) and deterministic for jsonb.
CREATE FUNCTION npanel_audit_row_hash(r audit_log) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(convert_to(jsonb_build_array(
        r.id,
        to_char(r.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        r.actor, r.action, r.target_type, r.target_id, r.request_id, r.details,
        encode(r.prev_hash, 'hex')
    )::text, 'UTF8'))
$$;

CREATE FUNCTION npanel_audit_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_id   bigint;
    last_hash bytea;
BEGIN
    -- Serialise appenders: the chain is a total order. 0x61756469 = 'audi'.
    PERFORM pg_advisory_xact_lock(1635083369);
    SELECT id, row_hash INTO last_id, last_hash FROM audit_log ORDER BY id DESC LIMIT 1;
    NEW.id := coalesce(last_id, 0) + 1;
    NEW.prev_hash := coalesce(last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    NEW.row_hash := npanel_audit_row_hash(NEW);
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION npanel_audit_chain();

CREATE FUNCTION npanel_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit rows are never changed or removed; record a new row instead.';
END
$$;

CREATE TRIGGER audit_log_immutable BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION npanel_audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION npanel_audit_refuse_change();

-- Every break in the chain, in id order: an empty result means the log is intact.
CREATE FUNCTION npanel_audit_verify() RETURNS TABLE (id bigint, problem text)
LANGUAGE sql STABLE AS $$
    SELECT c.id, c.problem FROM (
        SELECT a.id,
               CASE
                 WHEN a.id <> coalesce(lag(a.id) OVER w, 0) + 1
                   THEN 'rows missing before this one (previous id '
                        || coalesce(lag(a.id) OVER w, 0) || ')'
                 WHEN a.prev_hash IS DISTINCT FROM coalesce(lag(a.row_hash) OVER w,
                        '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
                   THEN 'prev_hash does not match the previous row''s hash'
                 WHEN a.row_hash <> npanel_audit_row_hash(a)
                   THEN 'contents do not match row_hash (row was altered)'
               END AS problem
        FROM audit_log a
        WINDOW w AS (ORDER BY a.id)
    ) c
    WHERE c.problem IS NOT NULL
    ORDER BY c.id
$$;
