#!/usr/bin/env bash
# systemd VM test (cgroup_vm tier): boot one virtme-ng VM with the host's systemd
# as PID 1 and run tests/watchdogd/vm/inner_systemd.py inside it, against real
# units, a real journal and a real polkitd.
# Needs what scripts/install-vm-tools.sh installs, plus systemd, dbus and polkitd
# on the host (the VM boots the host's root filesystem, read-only).
# Usage: scripts/run-vm-systemd-tests.sh [OUTDIR]   (OUTDIR/report.txt: pytest's output,
#        OUTDIR/exit-code, OUTDIR/vm-facts.txt, OUTDIR/journal.txt, OUTDIR/console.log)
#
# How it boots (virtme-ng 1.42, systemd 252; found by trial):
# - `vng --systemd` execs /sbin/init (systemd) as PID 1 and runs --exec through
#   virtme-init, which a drop-in it writes makes the ExecStart of serial-getty@.service.
# - The host root has /.dockerenv, so systemd would take itself for a Docker
#   container: console-getty instead of serial-getty@ttyS0 (a login prompt, --exec
#   never runs). `container=` (empty, in PID 1's environment) tells PID 1 it is not in
#   one. Generators still do (they read PID 1's variable, and empty is "container-other"
#   for them), so options read by generators (systemd.mask=, systemd.run=) are ignored.
# - So the boot unit is chosen by PID 1 itself: systemd.unit=serial-getty@ttyS0.service,
#   i.e. virtme-init running the tests after sysinit.target and basic.target (journald,
#   udev, the D-Bus socket), without multi-user.target (no PostgreSQL, Docker, logind).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [[ "${1:-}" == "--inner" ]]; then   # inside the VM, run by virtme-init as root
    OUT=$2
    {
        echo "PID 1: $(cat /proc/1/comm) ($(readlink /proc/1/exe)); $(systemctl --version | head -n 1)"
        echo "boot unit: $(grep -o 'systemd.unit=[^ ]*' /proc/cmdline); state: $(systemctl is-system-running 2>&1 || true)"
        echo "virtualization: PID 1 sees '$(systemctl show -p Virtualization --value)', other processes" \
             "'$(systemd-detect-virt 2>&1 || true)'"
    } > "$OUT/vm-facts.txt" 2>&1
    mkdir -p /run/npanel-vmtest
    rc=1
    if [[ "$(cat /proc/1/comm)" == systemd ]]; then
        set +e
        NPANEL_IN_VM=1 NPANEL_IN_SYSTEMD_VM=1 TMPDIR=/run/npanel-vmtest \
            "$ROOT/.venv/bin/python" -m pytest --noconftest -p no:cacheprovider -p no:hypothesispytest \
            -v -s tests/watchdogd/vm/inner_systemd.py > "$OUT/report.txt" 2>&1
        rc=$?
        set -e
    else
        echo "PID 1 is not systemd: $(cat /proc/1/comm)" > "$OUT/report.txt"
    fi
    journalctl --no-pager -b -o short-monotonic > "$OUT/journal.txt" 2>&1 || true
    echo "$rc" > "$OUT/exit-code"
    exit "$rc"
fi

OUT=$(realpath "${1:-build/vm-systemd-tests}")
mkdir -p "$OUT"
rm -f "$OUT/report.txt" "$OUT/exit-code" "$OUT/vm-facts.txt" "$OUT/journal.txt"
export PATH="$ROOT/.venv/bin:$PATH"   # vng calls virtme-run from its own bin folder

KERNEL=${NPANEL_VM_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[[ -n "$KERNEL" ]] || { echo "no kernel in /boot: apt-get install linux-image-amd64" >&2; exit 2; }
command -v vng >/dev/null || { echo "vng missing: .venv/bin/pip install virtme-ng" >&2; exit 2; }
[[ -x /lib/systemd/systemd ]] || { echo "no /lib/systemd/systemd: apt-get install systemd" >&2; exit 2; }

start=$SECONDS
# KVM hangs on these machines (ARCHITECTURE.md): plain emulation, 9p root. The
# serial console (systemd's boot messages) goes to console.log.
timeout "${NPANEL_VM_TIMEOUT:-1200}" vng --run "$KERNEL" --disable-kvm --force-9p --memory 1G --systemd \
    --rwdir "$OUT" --append "container=" --append "systemd.unit=serial-getty@ttyS0.service" \
    --exec "$ROOT/scripts/run-vm-systemd-tests.sh --inner $OUT" < /dev/null > "$OUT/console.log" 2>&1 || true
echo "VM run took $((SECONDS - start)) s (kernel $KERNEL)"
cat "$OUT/vm-facts.txt" 2>/dev/null || echo "(no vm-facts.txt: the tests did not run; see $OUT/console.log)"
cat "$OUT/report.txt" 2>/dev/null || tail -c 3000 "$OUT/console.log"
exit "$(cat "$OUT/exit-code" 2>/dev/null || echo 1)"
