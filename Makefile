# The two commands of the README: `make demo` (ship an example service to the local staging cluster)
# and `make test` (the whole test suite). Each sets up everything it needs, idempotently.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv lint unit stack team-registry cluster demo test wheel-check

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Fast tests: no daemons needed.
unit: venv
	$(VENV)/bin/pytest -q -m "not docker and not registry and not cluster"

stack: venv
	scripts/stack up

# The second registry "as teams run it" (own host name, TLS from a CA it makes, bearer tokens); issue 11.
team-registry: stack
	scripts/team-registry up

# Pinned helm/etcd/Kubernetes binaries (built once from Go modules into /var/cache/deployer/tools/bin),
# then the single-node cluster in its own netns; both steps are no-ops when already done.
cluster: stack
	e2e/tools.sh
	e2e/cluster up

demo: cluster
	$(VENV)/bin/deployer ship examples/node-hello

# The ship scenarios once more on the kind provider (e2e/README.md "kind provider"): its node image is
# built here on first use and its cluster is brought up here, next to the local one; then the repairs
# of its `up` that cost seconds (e2e/test_kind_repair.py).
KIND_TESTS := e2e/test_ship_cli.py e2e/test_ship_failures.py e2e/test_ship_lock.py e2e/test_kind_repair.py
# The kind cluster comes up in the background while tests/ (unit and integration: no cluster, no
# rollout timing) runs: beside the rollout tests its `up` slowed them and one failed (e2e/README.md
# "CI time"). The kind scenarios run next, and the kind cluster is taken down before e2e/ on the local
# cluster: idle, its control plane still takes 10-30 % of a core (docker stats), which the rollout tests'
# 1 s probes feel on 2 cores. An `up` that failed fails `make test` with its log, after e2e/ has run.
KIND_UP_LOG := /var/lib/deployer/kind/make-test-up.log

# deployer as a new user installs it: the wheel (not editable) in a clean venv, used from a service
# directory outside the checkout; it ships there when the cluster is up (always, within `make test`).
WHEEL_TESTS := e2e/test_installed_wheel.py
wheel-check: venv
	$(VENV)/bin/pytest -q $(WHEEL_TESTS)

test: lint stack team-registry cluster wheel-check
	@mkdir -p $(dir $(KIND_UP_LOG))
	e2e/cluster --provider kind up >$(KIND_UP_LOG) 2>&1 & kind_up=$$!; \
	$(VENV)/bin/pytest -q tests; unit=$$?; \
	wait $$kind_up; up=$$?; \
	echo "== e2e/cluster --provider kind up, in the background during tests/ (exit $$up):"; \
	cat $(KIND_UP_LOG); \
	kind=1; if [ $$up -eq 0 ]; then \
		DEPLOYER_CLUSTER_PROVIDER=kind $(VENV)/bin/pytest -q $(KIND_TESTS); kind=$$?; \
		e2e/cluster --provider kind down || kind=1; \
	fi; \
	$(VENV)/bin/pytest -q e2e --ignore=$(WHEEL_TESTS); e2e=$$?; \
	if [ $$up -ne 0 ]; then echo "make test: e2e/cluster --provider kind up failed; its log: $(KIND_UP_LOG) (shown above)" >&2; fi; \
	[ $$unit -eq 0 ] && [ $$kind -eq 0 ] && [ $$e2e -eq 0 ]
