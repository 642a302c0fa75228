# fedsim: `make run` (default simulation) and `make test` (test suite) set everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export FLWR_TELEMETRY_ENABLED := 0
export RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO := 0

.PHONY: setup run test test-fast fmnist-data paper-fmnist clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $@

run: setup
	$(VENV)/bin/fedsim

test: setup
	FLWR_HOME=$$(mktemp -d) $(PY) -m pytest

test-fast: setup
	FLWR_HOME=$$(mktemp -d) $(PY) -m pytest -m "not slow"

# Fashion-MNIST for the paper's experiments (Debian package; files in /usr/share/datasets/fashion-mnist).
fmnist-data:
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	  (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)

# The paper's FMNIST setting-2 study, all six samplers x 3 seeds (hours on 2 cores; rerun to resume).
paper-fmnist: setup fmnist-data
	$(PY) experiments/paper_fmnist_s2.py --seeds 0 1 2 --jobs 2

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
