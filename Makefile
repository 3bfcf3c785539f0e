# npanel: `make run` starts the platform locally, `make test` runs every test tier.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-integration test-e2e test-vm lint proto images bench clean venv

# A venv with exactly the pinned versions (constraints.txt), the package installed
# editable, and the protobuf code generated.
venv: $(STAMP)
$(STAMP): pyproject.toml constraints.txt setup.py
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "npanel needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $@

proto: $(STAMP)
	$(PY) tools/protogen.py

run: proto
	$(VENV)/bin/npanel dev

test: proto
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: proto
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: proto
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: proto
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

# The cgroup_vm tier alone: virtme-ng boots of a full cgroup v2 kernel, then of systemd as PID 1.
test-vm: proto
	scripts/run-vm-tests.sh build/vm-tests
	scripts/run-vm-systemd-tests.sh build/vm-systemd-tests

lint: proto
	$(VENV)/bin/ruff check services tests tools $(wildcard bench)
	@mkdir -p build/typecheck && ln -sfn ../../services build/typecheck/npanel
	$(VENV)/bin/mypy -p npanel -p tests -p tools
	@if ls bench/*.py >/dev/null 2>&1; then $(VENV)/bin/mypy bench/*.py bench/cgroupd_vm/*.py; fi

# Offline images: base and PostgreSQL via debootstrap, then the npanel image
# from a wheelhouse built here (see deploy/ and scripts/).
images: $(STAMP)
	scripts/build-base-images.sh
	scripts/build-images.sh

bench: proto
	@ls bench/*.py >/dev/null 2>&1 && for b in bench/bench_*.py; do $(PY) $$b || exit 1; done \
		|| echo "no benchmarks yet: each service adds its own under bench/"

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find services -name '*_pb2*.py*' -delete
