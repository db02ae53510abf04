# Two commands do everything on a fresh machine: `make run` and `make test`.
# Both create .venv if missing and install the pinned stack (setup.cfg), then run.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sn_tf-installed
PYTEST_ARGS ?=

.PHONY: run test test-faults bench install clean

install: $(STAMP)

# Reinstalled whenever the pins change.
$(STAMP): setup.cfg setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip "setuptools>=68" wheel
	$(PY) -m pip install -e '.[test]'
	$(PY) -c "import sn_tf.layers, tf_agents, gymnasium, ale_py, minatar"
	touch $(STAMP)

run: $(STAMP)
	$(PY) launchers/main_job.py

test: $(STAMP)
	$(PY) -m pytest -m "not faults_full" $(PYTEST_ARGS)

test-faults: $(STAMP)
	$(PY) -m pytest tests/faults $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_layers.py
	$(PY) benchmarks/bench_train_loop.py
	$(PY) benchmarks/bench_vector_env.py --steps 500
	$(PY) benchmarks/bench_sweep.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
