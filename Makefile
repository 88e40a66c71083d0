# mqguard — see README.md. Every target installs what it needs first.
PYTHON ?= python3
APT_PACKAGES = bindfs fuse3 procps iproute2 prometheus libsystemd-dev pkg-config
STAMP = build/.deps-stamp

.PHONY: deps test lint unit e2e demo bench clean

build:
	mkdir -p build

# Debian packages (real peers: FUSE for the "EFS") and Python tools. Idempotent.
deps: $(STAMP)
$(STAMP): requirements-dev.txt Makefile | build
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(PYTHON) -m pip install -q -r requirements-dev.txt
	touch $@

lint: deps
	ruff check mqguard tests tools
	mypy mqguard
	vermin -t=3.9- --no-tips --violations mqguard

unit: deps
	$(PYTHON) -m pytest -q tests/unit

e2e: deps
	$(PYTHON) -m pytest -q -s tests/e2e

# The whole suite: lint, unit/component tests with real peers, end-to-end.
test: deps lint
	$(PYTHON) -m pytest -q -s --durations=15 tests

# Runs the real daemon against the simulator, moto, IMDSv2 and a FUSE "EFS".
demo: deps
	$(PYTHON) tools/demo.py

# Benchmarks (not timed tests): endpoint latency with EFS healthy and frozen.
bench: deps
	$(PYTHON) tools/bench.py

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
