#!/usr/bin/env bash
# Entrypoint of npanel/postgres:15, following the official postgres image's contract:
#
#   POSTGRES_PASSWORD   required on first start (unless POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER       superuser name (default postgres)
#   POSTGRES_DB         database created on first start (default $POSTGRES_USER)
#   POSTGRES_INITDB_ARGS  extra initdb arguments
#   POSTGRES_HOST_AUTH_METHOD  auth for TCP connections (default scram-sha-256)
#   /docker-entrypoint-initdb.d/*.sql|*.sql.gz|*.sh  run once after initdb
#
# First start (no $PGDATA/PG_VERSION): initdb --auth-local=trust
# --auth-host=scram-sha-256, then a temporary server listening on the Unix socket
# ONLY creates the database and runs the init scripts, and is stopped. Only then
# does the real server start listening on '*'. So a client that reaches the server
# over TCP (testcontainers runs `psql --host 127.0.0.1` inside the container as its
# readiness check; compose's healthcheck runs pg_isready) never sees a half-set-up
# database. Later starts reuse the existing data directory.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +%FT%TZ)" "$*"; }

# `docker run IMAGE -c foo=bar` means `postgres -c foo=bar`.
if [[ "${1:-}" == -* ]]; then
    set -- postgres "$@"
fi

if [[ "${1:-}" != "postgres" ]]; then
    exec "$@"
fi

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

# As root: own the data and socket directories, then re-run as postgres.
if [[ "$(id -u)" == "0" ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chmod 3777 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

init_database() {
    if [[ -z "${POSTGRES_PASSWORD:-}" && "$POSTGRES_HOST_AUTH_METHOD" != "trust" ]]; then
        cat >&2 <<'EOF'
Error: the database is uninitialized and POSTGRES_PASSWORD is not set.
       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust, never in production).
EOF
        exit 1
    fi
    log "initdb into $PGDATA (superuser $POSTGRES_USER)"
    local pwfile
    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a word list by design
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
        --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
    rm -f "$pwfile"

    # Remote clients (other containers, the published port) use the same method.
    printf '\n# npanel entrypoint\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" \
        >>"$PGDATA/pg_hba.conf"
    printf "\n# npanel entrypoint\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    log "temporary server on the Unix socket only"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start >/dev/null

    local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
    if [[ "$POSTGRES_DB" != "postgres" ]]; then
        local exists
        exists="$("${psql[@]}" -tA -v db="$POSTGRES_DB" \
            <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")"
        if [[ -z "$exists" ]]; then
            log "creating database $POSTGRES_DB"
            "${psql[@]}" -q -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db"'
        fi
    fi

    local f
    for f in /docker-entrypoint-initdb.d/*; do
        [[ -e "$f" ]] || continue
        # shellcheck source=/dev/null
        case "$f" in
            *.sh)     log "running $f"; . "$f" ;;
            *.sql)    log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
            *)        log "ignoring $f" ;;
        esac
    done

    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    log "initialisation complete"
}

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    init_database
else
    log "reusing existing data in $PGDATA (PostgreSQL $(cat "$PGDATA/PG_VERSION"))"
fi

log "starting $*"
exec "$@"
