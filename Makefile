# Two entry points: `make demo` and `make test`. Both build the environment from nothing on a fresh machine.
PYTHON ?= python3
REQ_HASH := $(shell cat requirements/constraints.txt requirements/dev.in | sha1sum | cut -c1-12)
DEFAULT_VENV := $(HOME)/.cache/artifact-tools/venv-$(REQ_HASH)
VENV ?= $(DEFAULT_VENV)
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# the suite runs on every core (pytest-xdist); each worker starts its own Spark session
PYTEST_WORKERS ?= auto

.PHONY: env lint browser test demo bench clean

env: $(VENV)/.installed
	@$(BIN)/pip install --quiet --no-deps --no-build-isolation -e . >/dev/null

# torch goes in first and pinned: an unpinned torch pulls several GB of CUDA wheels.
# numpy<2 (1.26.4) because MXNet 1.9.1, the last release, needs it.
# The default venv's path carries the hash of both requirement files, so one that has .installed is up to date
# whatever the files' times (a fresh clone's are newer), and one left half-built (no .installed) is removed and
# built again. A venv given as VENV=... is the user's: never removed, brought up to date when the files change.
$(VENV)/.installed: $(if $(filter $(DEFAULT_VENV),$(VENV)),,requirements/constraints.txt requirements/dev.in)
	$(if $(filter $(DEFAULT_VENV),$(VENV)),rm -rf $(VENV))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c requirements/constraints.txt -r requirements/dev.in
	touch $@

# ruff and mypy read their settings from pyproject.toml ([tool.ruff], [tool.mypy]).
lint: env
	$(BIN)/ruff check .
	$(BIN)/mypy

# HTML reports (migration, Model Monitor) are checked in a real headless browser: Debian's chromium, installed
# when missing and this runs as root (otherwise those tests skip, saying why).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium not installed: the headless-browser checks will be skipped"; }

# OMP_WAIT_POLICY=PASSIVE: the test workers already fill every core, and OpenMP threads that spin while waiting
# (libgomp's default) burn the CPU the other worker needs; passive threads sleep instead. Thread counts, and so what
# the tests check, are unchanged.
test: env lint browser
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=25 $(PYTEST_ARGS)

demo: env
	$(BIN)/python scripts/make_samples.py build/samples
	@for f in build/samples/*; do echo; echo "=== artifact-tools inspect $$f"; $(BIN)/artifact-tools inspect "$$f" || exit 1; done

bench: env
	@for b in benchmarks/*.py; do echo "=== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build .pytest_cache
