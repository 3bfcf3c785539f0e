#!/usr/bin/env bash
# Build the offline base images that stand in for public registry images on
# machines that can reach only the Debian / PyPI package registries:
#
#   npanel/base:bookworm  debootstrap --variant=minbase bookworm + python3,
#                         python3-venv, ca-certificates, tini; imported with
#                         `docker import` (stands in for python:3.11-slim)
#   npanel/postgres:15    Debian's postgresql-15 on that base, entrypoint honouring
#                         POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB like the
#                         official image (deploy/postgres/)
#
# Idempotent: an image that already exists is kept unless FORCE=1.
#
# Environment:
#   FORCE=1                rebuild even if the image exists
#   BASE_IMAGE_NAME        default npanel/base:bookworm
#   PG_IMAGE_NAME          default npanel/postgres:15
#   DEBIAN_MIRROR          default http://deb.debian.org/debian
#   WORK_DIR_PARENT        where the debootstrap tree is built (default /var/tmp)
set -euo pipefail

BASE_IMAGE_NAME="${BASE_IMAGE_NAME:-npanel/base:bookworm}"
PG_IMAGE_NAME="${PG_IMAGE_NAME:-npanel/postgres:15}"
DEBIAN_SUITE="bookworm"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
BASE_PACKAGES="python3,python3-venv,ca-certificates,tini"
WORK_DIR_PARENT="${WORK_DIR_PARENT:-/var/tmp}"
FORCE="${FORCE:-0}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[build-base-images] %s\n' "$*"; }
die() { printf '[build-base-images] ERROR: %s\n' "$*" >&2; exit 1; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# After a rebuild, remove the images the tags pointed to before, if nothing else
# uses them (newest first: an old postgres image holds on to the old base).
replaced=()
remember_replaced() {
    local old_id="$1" name="$2"
    if [[ -n "$old_id" && "$old_id" != "$(image_id "$name")" ]]; then
        replaced=("$old_id" "${replaced[@]}")
    fi
}
remove_replaced() {
    local id
    for id in "${replaced[@]}"; do
        if docker image rm "$id" >/dev/null 2>&1; then
            log "removed replaced image ${id:7:12}"
        fi
    done
}

# Run "$@" and report how long it took.
timed() {
    local label="$1"; shift
    local start=$SECONDS
    "$@"
    log "$label took $((SECONDS - start))s"
}

[[ "$(id -u)" -eq 0 ]] || die "must run as root (debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/install-docker.sh first"
docker info >/dev/null 2>&1 || die "no Docker engine answers: run scripts/install-docker.sh first"

SECONDS=0
work=""
cleanup() { if [[ -n "$work" ]]; then rm -rf "$work"; fi; }
trap cleanup EXIT

build_base() {
    work="$(mktemp -d "$WORK_DIR_PARENT/npanel-rootfs.XXXXXX")"
    local rootfs="$work/rootfs"
    log "debootstrap --variant=minbase --include=$BASE_PACKAGES $DEBIAN_SUITE $rootfs $DEBIAN_MIRROR"
    local start=$SECONDS
    debootstrap --variant=minbase --include="$BASE_PACKAGES" \
        "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    log "debootstrap took $((SECONDS - start))s"

    log "configuring the rootfs (apt sources, slim dpkg/apt settings, cleanup)"
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $DEBIAN_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Like the official debian:*-slim images: no docs/man pages, no recommends,
    # no package cache left behind by later `apt-get install` in Dockerfiles.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
        "$rootfs"/usr/share/info/*
    : >"$rootfs/etc/hostname"
    # The host's resolv.conf is not part of the image; docker provides one.
    rm -f "$rootfs/etc/resolv.conf"

    log "docker import -> $BASE_IMAGE_NAME"
    # shellcheck disable=SC2016  # expanded by the inner bash, from its arguments
    timed "docker import" bash -c '
        tar -C "$1" --numeric-owner -c . | docker import \
            --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            --change "ENV LANG=C.UTF-8" \
            --change "CMD [\"/bin/bash\"]" \
            --message "debootstrap --variant=minbase --include=$2 $3" \
            - "$4" >/dev/null' _ "$rootfs" "$BASE_PACKAGES" "$DEBIAN_SUITE" "$BASE_IMAGE_NAME"
    rm -rf "$work"; work=""

    log "smoke test: python3 in $BASE_IMAGE_NAME"
    docker run --rm "$BASE_IMAGE_NAME" python3 -c \
        'import ssl, sys, venv; print("  python", sys.version.split()[0], ssl.OPENSSL_VERSION)'
}

build_postgres() {
    log "docker build -f deploy/postgres/Dockerfile -t $PG_IMAGE_NAME (BASE_IMAGE=$BASE_IMAGE_NAME)"
    local start=$SECONDS
    docker build --build-arg "BASE_IMAGE=$BASE_IMAGE_NAME" \
        -f "$ROOT/deploy/postgres/Dockerfile" -t "$PG_IMAGE_NAME" "$ROOT/deploy/postgres" \
        >"$WORK_DIR_PARENT/npanel-postgres-build.log" 2>&1 \
        || { tail -n 40 "$WORK_DIR_PARENT/npanel-postgres-build.log" >&2; die "docker build $PG_IMAGE_NAME failed"; }
    log "docker build $PG_IMAGE_NAME took $((SECONDS - start))s (log: $WORK_DIR_PARENT/npanel-postgres-build.log)"
    log "smoke test: psql, pg_isready, postgres on PATH in $PG_IMAGE_NAME"
    docker run --rm --entrypoint sh "$PG_IMAGE_NAME" -c \
        'command -v psql pg_isready postgres >/dev/null && postgres --version | sed "s/^/  /"'
}

if [[ "$FORCE" != "1" ]] && image_exists "$BASE_IMAGE_NAME"; then
    log "$BASE_IMAGE_NAME exists, skipping (FORCE=1 rebuilds)"
else
    old_id="$(image_id "$BASE_IMAGE_NAME")"
    build_base
    remember_replaced "$old_id" "$BASE_IMAGE_NAME"
fi

if [[ "$FORCE" != "1" ]] && image_exists "$PG_IMAGE_NAME"; then
    log "$PG_IMAGE_NAME exists, skipping (FORCE=1 rebuilds)"
else
    old_id="$(image_id "$PG_IMAGE_NAME")"
    build_postgres
    remember_replaced "$old_id" "$PG_IMAGE_NAME"
fi

remove_replaced
for img in "$BASE_IMAGE_NAME" "$PG_IMAGE_NAME"; do
    log "$img: $(docker image inspect --format '{{.Size}}' "$img" | awk '{printf "%.0f MB", $1 / 1000 / 1000}')"
done
log "done in ${SECONDS}s"
