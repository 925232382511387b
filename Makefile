# Two commands set everything up on a fresh machine (Python 3.11 and make):
#   make demo   - creates .venv on first use, then runs the bundled demo trial end to end
#   make test   - same set-up, then the whole test suite
# make bench prints one JSON document of speed measurements.
# make compose-check runs a 2-round trial through the docker-compose stack (root; minutes; README "Run the stack").

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: demo test bench compose-check clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 2; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo's signed approvals live in the git-ignored runs/demo-state/ (the demo sites' node configs
# point there): one approver key per site, made once; each site trusts its own approver's public key;
# each site approves the demo spec afresh on every `make demo` (one process signs for all four).
# The demo regulator's key (regulator.key.pem) is made there too; the demo's sandbox plan
# (examples/plans/) names its public key, so `sandbox suspend ... --key` works on demo runs.
# The coordinator's own key (coordinator.key.pem, made at the first demo, never committed) signs report.json;
# the demo ends by verifying its newest run folder against that key's public half (exit 5 if anything fails).
DEMO_STATE := runs/demo-state
DEMO_KEYS := $(DEMO_STATE)/keys
DEMO_SITES := de-berlin fr-lyon gb-leeds ch-zurich
MISSING_KEYS = $(strip $(foreach s,$(DEMO_SITES) regulator,$(if $(wildcard $(DEMO_KEYS)/$(s).key.pem),,--name $(s))))

demo: $(STAMP)
	$(BIN)/sandbox validate examples/demo.yaml
	$(if $(MISSING_KEYS),$(BIN)/sandbox certs new-key --out $(DEMO_KEYS) $(MISSING_KEYS),@:)
	@for s in $(DEMO_SITES) regulator; do cp $(DEMO_KEYS)/$$s.pub.pem $(DEMO_KEYS)/$$s.trusted.pem; done
	$(BIN)/sandbox approve examples/demo.yaml $(foreach s,$(DEMO_SITES),--site $(s) --key $(DEMO_KEYS)/$(s).key.pem)
	$(if $(wildcard $(DEMO_KEYS)/coordinator.key.pem),@:,$(BIN)/sandbox certs new-key --out $(DEMO_KEYS) --name coordinator)
	$(BIN)/sandbox run examples/demo.yaml --coordinator-key $(DEMO_KEYS)/coordinator.key.pem
	$(BIN)/sandbox audit verify "$$(ls -dt runs/cancer-risk-demo/*/ | head -1)" --coordinator-key $(DEMO_KEYS)/coordinator.pub.pem

# Lint, format and type checks first (each takes seconds), then the suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	@$(BIN)/python tests/benchmarks/run.py

# Not part of make test (it takes minutes): needs root; starts its own dockerd and stops it at the end.
compose-check: $(STAMP)
	@bash deploy/compose-check.sh

clean:
	rm -rf runs .pytest_cache .mypy_cache .hypothesis
