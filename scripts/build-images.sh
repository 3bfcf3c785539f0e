#!/usr/bin/env bash
# Build the npanel image (deploy/Dockerfile) without any registry access from
# inside the build:
#
#   1. on the host: pip wheel --wheel-dir build/wheelhouse .   (npanel + every
#      dependency as a wheel; the package build generates the protobuf code)
#   2. docker build -f deploy/Dockerfile --build-arg BASE_IMAGE=$BASE_IMAGE -t $NPANEL_IMAGE .
#
# Environment:
#   BASE_IMAGE     base for both Dockerfile stages; default: python:3.11-slim when
#                  that image is present locally, else npanel/base:bookworm (built
#                  by scripts/build-base-images.sh)
#   NPANEL_IMAGE   tag to build (default npanel:dev)
#   PIP            pip used for the wheelhouse (default: .venv/bin/pip, else
#                  python3 -m pip). Must run the same Python minor version (3.11)
#                  as the base image, since compiled wheels are version-specific.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NPANEL_IMAGE="${NPANEL_IMAGE:-npanel:dev}"
WHEELHOUSE="$ROOT/build/wheelhouse"

log() { printf '[build-images] %s\n' "$*"; }
die() { printf '[build-images] ERROR: %s\n' "$*" >&2; exit 1; }

cd "$ROOT"
SECONDS=0

[[ -f pyproject.toml ]] || die "no pyproject.toml in $ROOT"
docker info >/dev/null 2>&1 || die "no Docker engine answers: run scripts/install-docker.sh first"

# --- base image ------------------------------------------------------------------
if [[ -n "${BASE_IMAGE:-}" ]]; then
    log "base image $BASE_IMAGE (from BASE_IMAGE)"
elif docker image inspect python:3.11-slim >/dev/null 2>&1; then
    BASE_IMAGE="python:3.11-slim"
    log "base image $BASE_IMAGE (present locally)"
else
    BASE_IMAGE="npanel/base:bookworm"
    log "base image $BASE_IMAGE (python:3.11-slim is not present locally)"
fi
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if [[ "$BASE_IMAGE" == npanel/* ]]; then
        die "$BASE_IMAGE is missing: run scripts/build-base-images.sh first"
    fi
    log "$BASE_IMAGE is not present locally; docker build will try to pull it"
fi

# --- wheelhouse --------------------------------------------------------------------
if [[ -n "${PIP:-}" ]]; then
    read -r -a pip_cmd <<<"$PIP"
elif [[ -x "$ROOT/.venv/bin/pip" ]]; then
    pip_cmd=("$ROOT/.venv/bin/pip")
else
    pip_cmd=(python3 -m pip)
fi
pyver="$("${pip_cmd[@]}" --version | sed -n 's/.*(python \([0-9]*\.[0-9]*\)).*/\1/p')"
[[ "$pyver" == "3.11" ]] || die "${pip_cmd[*]} runs Python ${pyver:-?}; the images run 3.11 (set PIP)"

log "building the wheelhouse with ${pip_cmd[*]} -> build/wheelhouse"
start=$SECONDS
# Fresh each time, so no stale npanel wheel or dependency version is left over;
# setuptools' build/lib too, else a module deleted from services/ would still be
# packaged from there.
rm -rf "$WHEELHOUSE" "$ROOT/build/lib" "$ROOT"/build/bdist.*
mkdir -p "$WHEELHOUSE"
# (grep drops the noise of a pip.conf that lists absent local indexes.)
"${pip_cmd[@]}" wheel --quiet --disable-pip-version-check -c "$ROOT/constraints.txt" --wheel-dir "$WHEELHOUSE" . \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2) \
    || die "pip wheel failed"
count="$(find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' | wc -l)"
log "wheelhouse: $count wheels, $(du -sh "$WHEELHOUSE" | cut -f1), took $((SECONDS - start))s"
find "$WHEELHOUSE" -maxdepth 1 -name 'npanel-*.whl' -printf '  %f\n'
# Only wheels the image's Python can use: pure, cp311, abi3, or manylinux/linux x86_64.
bad="$(find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' -printf '%f\n' \
    | grep -Ev -- '-(py3|py2\.py3|cp311)-(none|abi3|cp311)-(any|(many)?linux.*x86_64)\.whl$' \
    | grep -Ev -- '-cp3[0-9]*-abi3-(many)?linux.*x86_64\.whl$' || true)"
[[ -z "$bad" ]] || die "wheels that Python 3.11 on x86_64 Linux cannot install: $bad"

# --- image -----------------------------------------------------------------------------
log "docker build -f deploy/Dockerfile --build-arg BASE_IMAGE=$BASE_IMAGE -t $NPANEL_IMAGE ."
start=$SECONDS
old_id="$(docker image inspect --format '{{.Id}}' "$NPANEL_IMAGE" 2>/dev/null || true)"
build_log="$ROOT/build/docker-build-npanel.log"
docker build -f deploy/Dockerfile --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$NPANEL_IMAGE" . \
    >"$build_log" 2>&1 || { tail -n 40 "$build_log" >&2; die "docker build failed (log: $build_log)"; }
log "docker build took $((SECONDS - start))s (log: build/docker-build-npanel.log)"
# The image the tag pointed to before, unless still in use (keeps rebuilds from
# piling up dangling images).
if [[ -n "$old_id" && "$old_id" != "$(docker image inspect --format '{{.Id}}' "$NPANEL_IMAGE")" ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi
# The legacy builder keeps the builder stage as an untagged image: drop it.
docker image prune --force --filter label=org.npanel.stage=builder >/dev/null || true

log "smoke test: $NPANEL_IMAGE runs as uid 10001 and has the npanel command"
uid="$(docker run --rm --entrypoint id "$NPANEL_IMAGE" -u)"
[[ "$uid" == "10001" ]] || die "$NPANEL_IMAGE runs as uid $uid, expected 10001"
docker run --rm "$NPANEL_IMAGE" --help >/dev/null || die "'npanel --help' fails in $NPANEL_IMAGE"

log "$NPANEL_IMAGE: $(docker image inspect --format '{{.Size}}' "$NPANEL_IMAGE" \
    | awk '{printf "%.0f MB", $1 / 1000 / 1000}')"
log "done in ${SECONDS}s"
