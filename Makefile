# fcinv: two commands do all the set-up on a fresh machine.
#   make demo   create .venv, install, run Stage III end to end on the embedded Ge default
#   make test   create .venv, install, run the test suite (< 10 min on 2 cores)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
STAMP  := $(VENV)/.fcinv-installed

.PHONY: venv demo test test-slow bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q -e ".[dev,experiment]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fcinv demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PIP) install -q -e ".[dev,experiment,mlff,latent]"
	$(PY) -m pytest -q -m "slow or mlff"

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) out build src/*.egg-info
