#!/usr/bin/env bash
# cgroup-vm tier (`make test-vm`): boot one virtme-ng VM with Debian's kernel
# (every cgroup v2 controller) and run cgroupd's enforcement tests inside it.
# Needs: apt-get install qemu-system-x86 linux-image-amd64 busybox-static;
#        .venv/bin/pip install virtme-ng==1.42.
# Usage: scripts/run-vm-tests.sh [OUTDIR]   (OUTDIR/report.txt gets pytest's output)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(realpath "${1:-build/vm-tests}")
mkdir -p "$OUT"
export PATH="$ROOT/.venv/bin:$PATH"   # vng calls virtme-run from its own bin folder

KERNEL=${NPANEL_VM_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[[ -n "$KERNEL" ]] || { echo "no kernel in /boot: apt-get install linux-image-amd64" >&2; exit 2; }
command -v vng >/dev/null || { echo "vng missing: .venv/bin/pip install virtme-ng" >&2; exit 2; }

# KVM hangs on these machines (ARCHITECTURE.md): plain emulation, 9p root. The tree
# is read-only there, so plugins that write beside it (cache, hypothesis) stay off.
INNER="cd $ROOT && NPANEL_IN_VM=1 $ROOT/.venv/bin/python -m pytest --noconftest -p no:cacheprovider -p no:hypothesispytest -v -s \
  tests/cgroupd/vm/inner_enforcement.py > $OUT/report.txt 2>&1; echo \$? > $OUT/exit-code"
# A real (virtio-scsi) disk for the io.max test; the VM kernel has no loop module.
truncate -s 64M "$OUT/io-disk.img"
start=$SECONDS
vng --run "$KERNEL" --disable-kvm --force-9p --memory 1G --rwdir "$OUT" --disk "$OUT/io-disk.img" \
  --exec "$INNER"
echo "VM run took $((SECONDS - start)) s (kernel $KERNEL)"
cat "$OUT/report.txt"
exit "$(cat "$OUT/exit-code" 2>/dev/null || echo 1)"
