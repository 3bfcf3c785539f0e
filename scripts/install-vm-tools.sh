#!/usr/bin/env bash
# Install what the cgroup_vm tier needs on a Debian machine (ARCHITECTURE.md):
# qemu, a Debian kernel with every cgroup v2 controller, busybox (virtme-run
# refuses to start without it) and cgroup-tools (the benchmark's comparison).
# Idempotent; virtme-ng itself comes from the project venv (pyproject test extras).
set -euo pipefail
log() { printf '[install-vm-tools] %s\n' "$*"; }
# systemd, dbus and polkitd: the systemd VM test boots the host's systemd as PID 1
# (scripts/run-vm-systemd-tests.sh).
PACKAGES=(qemu-system-x86 linux-image-amd64 busybox-static cgroup-tools systemd dbus polkitd)
missing=()
for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == *"install ok installed"* ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    log "already installed: ${PACKAGES[*]}"
fi
ls /boot/vmlinuz-* >/dev/null 2>&1 || { log "ERROR: no kernel image in /boot"; exit 1; }
log "kernels: $(ls /boot/vmlinuz-* | tr '\n' ' ')"
