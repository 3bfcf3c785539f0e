"""The part of cgroupd's benchmark that runs inside the virtme-ng VM (bench/bench_cgroupd.py boots it)."""
