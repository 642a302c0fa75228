# fedsim: `make run` (default simulation) and `make test` (test suite) set everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export FLWR_TELEMETRY_ENABLED := 0
export RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO := 0

.PHONY: setup run test test-fast fmnist-data paper-fmnist clean mutation

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

# The heterogeneity-sampling study on the paper's FMNIST setting-2 partition, 10 paired seeds
# (hours on 2 cores; rerun to resume: finished runs are skipped). experiments/heterogeneity_sampling.md.
paper-fmnist: setup fmnist-data
	$(PY) experiments/heterogeneity_sampling.py --samplers random hics hics_oracle hics_diverse --seeds 0 1 2 3 4 5 6 7 8 9

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache

# Mutation testing with mutmut (outside CI; docs/mutation.md has the commands and the score).
# mutmut is installed into the venv here only, not a project dependency. It runs on a copy
# under $(MUTATION_DIR) whose pyproject.toml gets the [tool.mutmut] settings, so the project's
# own files are never touched. The default tests are the quick unit tests of the mutated
# modules (about 10 s in all): no simulation, Ray or CLI test, and the one end-to-end run in
# test_hics_oracle.py is deselected. Narrow it for a quick look, or run it module by module, e.g.
#   make mutation MUTATION_ONLY=fedsim/server/aggregation.py MUTATION_DIR=outputs/mutation_aggregation
# Surviving mutants: `cd $(MUTATION_DIR) && ../../$(VENV)/bin/mutmut show <name>` (or `browse`);
# benchmarks/mutation_table.py turns the results into the per-module table.
MUTATION_ONLY  ?= fedsim/selection/ fedsim/data/partitioners.py fedsim/server/aggregation.py \
                  fedsim/server/validation.py fedsim/compare/stats.py
MUTATION_TESTS ?= tests/test_mutants.py tests/test_mutants_stats.py tests/test_mutants_scalable.py \
                  tests/test_hics_core.py tests/test_hics_oracle.py tests/test_hics_scalable.py \
                  tests/test_samplers_baselines.py tests/test_partitioners.py tests/test_compare_stats.py \
                  tests/test_compare_metrics.py \
                  -m "not slow" --deselect tests/test_hics_oracle.py::test_oracle_run_end_to_end_records_its_name
MUTATION_DIR   ?= outputs/mutation
MUTATION_JOBS  ?= 2

mutation: setup
	$(PY) -m pip install -q "mutmut>=3.3,<4"
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)
	cp -r fedsim tests pyproject.toml $(MUTATION_DIR)/
	$(PY) -c 'import json, shlex, sys; cfg, only, tests = sys.argv[1:4]; globs = [p if p.endswith(".py") else p.rstrip("/") + "/*" for p in only.split()]; open(cfg, "a").write("\n[tool.mutmut]\nsource_paths = [\"fedsim\"]\nonly_mutate = %s\npytest_add_cli_args_test_selection = %s\n" % (json.dumps(globs), json.dumps(shlex.split(tests))))' $(MUTATION_DIR)/pyproject.toml '$(MUTATION_ONLY)' '$(MUTATION_TESTS)'
	cd $(MUTATION_DIR) && OMP_NUM_THREADS=1 FLWR_HOME=$$(mktemp -d) $(abspath $(VENV))/bin/mutmut run --max-children $(MUTATION_JOBS)
	cd $(MUTATION_DIR) && $(abspath $(VENV))/bin/mutmut results
