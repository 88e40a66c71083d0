# mqguard — see README.md. Every target installs what it needs first.
PYTHON ?= python3
APT_PACKAGES = bindfs fuse3 libfuse2 fio procps iproute2 util-linux systemd python3 python3-systemd python3-venv prometheus libsystemd-dev pkg-config rpm rpmlint man-db polkitd dbus
# only the deploy kit's checks (tests/deploy) need these: `make unit` does not install them
DEPLOY_APT_PACKAGES = cloud-init packer nftables
STAMP = build/.deps-stamp
APT_STAMP = build/.apt-deps-stamp
DEPLOY_STAMP = build/.deploy-deps-stamp

.PHONY: apt-deps deps deploy-deps test lint unit e2e systemtest deploytest demo bench soak dist srpm rpm clean

build:
	mkdir -p build

# Debian packages (real peers: FUSE for the "EFS") and the mqm user. Idempotent.
apt-deps: $(APT_STAMP)
$(APT_STAMP): Makefile | build
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# MQ's installer creates the mqm user and group; the default run_as names it.
	@getent passwd mqm >/dev/null || useradd --system --user-group --home-dir /var/mqm --no-create-home \
	  --shell /sbin/nologin mqm
	touch $@

# ... and the Python tools the suite needs, into $(PYTHON)'s environment.
deps: $(STAMP)
$(STAMP): requirements-dev.txt $(APT_STAMP) | build
	$(PYTHON) -m pip install -q -r requirements-dev.txt
	touch $@

# The demo's own virtual environment under build/: it works with a stock Debian python3, whose
# pip refuses to install into the system (PEP 668, "externally-managed-environment").
DEMO_VENV = build/demo-venv
$(DEMO_VENV)/.stamp: requirements-demo.txt $(APT_STAMP) | build
	rm -rf $(DEMO_VENV)
	$(PYTHON) -m venv --system-site-packages $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install -q -r requirements-demo.txt
	touch $@

# The deploy kit's tools (tests/deploy): cloud-init's schema checker, packer, nft, checkov, cfn-guard.
deploy-deps: $(DEPLOY_STAMP)
$(DEPLOY_STAMP): Makefile $(STAMP) | build
	@# cloud-init is installed for its schema checker only: never let it run on this machine
	mkdir -p /etc/cloud && touch /etc/cloud/cloud-init.disabled
	@missing=""; for p in $(DEPLOY_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# checkov in its own venv (it pins an old boto3), cfn-guard's static binary.
	test -x build/checkov-venv/bin/checkov || { $(PYTHON) -m venv build/checkov-venv && \
	  build/checkov-venv/bin/pip install -q checkov; }
	@# npm: Node's own (nodesource) where installed, else Debian's
	@# (without it the deploy-kit tests are skipped, and say why)
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm \
	  >/dev/null || echo "npm unavailable: cfn-guard cannot be installed"
	test -x build/cfn-guard/cfn-guard || { npm install --silent --no-audit --no-fund --prefix build/cfn-guard-npm \
	  @cdklabs/cdk-validator-cfnguard@0.0.62 && mkdir -p build/cfn-guard && cp \
	  build/cfn-guard-npm/node_modules/@cdklabs/cdk-validator-cfnguard/bin/ubuntu/x86_64/cfn-guard build/cfn-guard/; } \
	  || echo "cfn-guard could not be installed from npm: the deploy-kit tests will be skipped"
	touch $@

lint: deps
	ruff check mqguard tests tools packaging/rpm/prune.py deploy/cloudformation/warm_pool_refresh.py
	mypy mqguard
	vermin -t=3.9- --no-tips --violations mqguard

unit: deps
	$(PYTHON) -m pytest -q tests/unit

deploytest: deps deploy-deps
	$(PYTHON) -m pytest -q -s tests/deploy

e2e: deps
	$(PYTHON) -m pytest -q -s tests/e2e

# The RPM inside the real systemd (PID + mount namespace over an overlay of /).
systemtest: deps
	$(PYTHON) -m pytest -q -s tests/system

# The whole suite: lint, a 2-minute fixed-seed chaos soak, unit/component tests with
# real peers, end-to-end, system.
test: deps deploy-deps lint
	$(PYTHON) tools/soak.py --seconds 120 --seed 7
	$(PYTHON) -m pytest -q -s --durations=15 tests

# The randomized fault campaign with invariants (see README "Chaos soak").
SOAK_SECONDS ?= 1800
SOAK_SEED ?= 7
soak: deps
	$(PYTHON) tools/soak.py --seconds $(SOAK_SECONDS) --seed $(SOAK_SEED)

# Runs the real daemon against the simulator, moto, IMDSv2 and a FUSE "EFS" (it refuses to run on a
# host with IBM MQ installed, and touches no process it did not start).
demo: $(DEMO_VENV)/.stamp
	$(DEMO_VENV)/bin/python tools/demo.py

VERSION := $(shell $(PYTHON) -c 'import re;print(re.search(r"__version__ = \"(.+)\"", open("mqguard/__init__.py").read()).group(1))')
RELEASE ?= 1
SRC = build/src/mqguard-$(VERSION)

# The package, in three steps that need only python3 (with pip) and rpmbuild - no Debian tool:
#   make dist   build/dist/mqguard-VERSION.tar.gz: mqguard, its pinned, vendored libraries and the spec at the top,
#               so that `rpmbuild -tb mqguard-VERSION.tar.gz` builds it anywhere (e.g. on a RHEL 9 build host);
#   make srpm   build/rpmbuild/SRPMS/mqguard-VERSION-RELEASE.src.rpm (`rpmbuild --rebuild` it elsewhere);
#   make rpm    build/rpmbuild/RPMS/noarch/mqguard-VERSION-RELEASE%{?dist}.noarch.rpm.
DIST = build/dist/mqguard-$(VERSION).tar.gz
RPMBUILD = rpmbuild --define "_topdir $(CURDIR)/build/rpmbuild" --define "release_number $(RELEASE)"

dist:
	rm -rf build/src build/dist
	mkdir -p $(SRC) build/dist
	$(PYTHON) -m pip install -q --no-deps --no-compile --only-binary=:all: --target $(SRC)/lib \
	  -r packaging/rpm/vendor-requirements.txt
	$(PYTHON) packaging/rpm/prune.py $(SRC)/lib
	cp -a mqguard $(SRC)/lib/
	find $(SRC)/lib -name __pycache__ -prune -exec rm -rf {} +
	cp -a systemd examples docs packaging README.md LICENSE $(SRC)/
	mv $(SRC)/packaging/rpm/mqguard.spec $(SRC)/mqguard.spec  # one spec, at the top: rpmbuild -t finds it
	tar -C build/src --owner=0 --group=0 --mtime=2026-01-01 -czf $(DIST) mqguard-$(VERSION)

srpm: dist
	rm -rf build/rpmbuild/SRPMS
	$(RPMBUILD) -ts --quiet $(DIST)
	@ls -l build/rpmbuild/SRPMS/

rpm: dist
	rm -rf build/rpmbuild/RPMS
	$(RPMBUILD) -tb --quiet $(DIST)
	@ls -l build/rpmbuild/RPMS/noarch/

# Benchmarks (not timed tests): endpoint latency (EFS healthy, frozen, 100 abusive clients) and RSS, also as packaged.
bench: deps rpm
	$(PYTHON) tools/bench.py
	$(PYTHON) tools/bench_nha.py

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
