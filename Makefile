# fcinv: two commands do all the set-up on a fresh machine.
#   make demo   create .venv, install, run Stage III end to end on the embedded Ge default
#   make test   create .venv, install, lint (ruff check + ruff format --check), build the docs, run the test suite
#   make docs   the documentation site (MkDocs, `mkdocs build --strict`: a warning fails; no --quiet, which would hide them) into out/site
#   make lint   ruff check + ruff format --check over LINT_PATHS
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
STAMP  := $(VENV)/.fcinv-installed

# The paths ruff must pass: the whole tree (pyproject.toml lists the older files whose long message
# strings are not yet wrapped; that list only shrinks).
LINT_PATHS ?= src tests benchmarks docs
RUFF := $(VENV)/bin/ruff

.PHONY: venv demo lint test test-slow bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -e ".[dev,experiment,dask,docs]"
	$(PY) -m fcinv.forward.warm
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fcinv demo --out out/demo

lint: $(STAMP)
	$(RUFF) check $(LINT_PATHS)
	$(RUFF) format --check $(LINT_PATHS)

# the `docs` extra (mkdocs, mkdocs-material, mkdocstrings) is installed by the venv step above
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

test: lint docs
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PIP) install -q -e ".[dev,experiment,mlff,latent,dask]"
	$(PY) -m pytest -q -m "slow or mlff"

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) out build src/*.egg-info
