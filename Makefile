# Two commands do everything on a fresh machine: `make run` and `make test`.
# Both create .venv if missing and install the locked stack, then run.
#
#   make test                      Python 3.12 (the default)
#   make test PYTHON=python3.11    or python3.13, or a path to an interpreter
#
# The stack is resolved once, into requirements/lock.txt (`make lock`, from
# setup.cfg and the overrides in requirements/); installing is one call that
# takes the lock as it is. BUILD_NOTES.md says why each pin and override.

PYTHON ?= python3.12
VENV   ?= .venv
PY     := $(VENV)/bin/python
# One stamp per interpreter asked for, so PYTHON=... on an existing .venv
# checks (and if needed rebuilds) it instead of silently keeping another Python.
STAMP  := $(VENV)/.sn_tf-installed-$(subst /,_,$(PYTHON))
LOCK   := requirements/lock.txt
# The version of uv that writes and installs the lock.
UV_VERSION := 0.13.9
OVERRIDES := --override requirements/overrides.txt \
             --override requirements/cpu-overrides.txt
PYTEST_ARGS ?=

.PHONY: run test test-faults bench install lock clean

install: $(STAMP)

# The interpreter: $(PYTHON) if it runs. A pyenv shim for a version pyenv has
# installed but not selected refuses to run; then pyenv's own install of that
# version is used. .venv is rebuilt when its Python is not the one asked for.
$(STAMP): setup.cfg setup.py $(LOCK)
	@set -e; \
	py=$$($(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null || true); \
	if [ -z "$$py" ] && command -v pyenv >/dev/null; then \
	  v=$$(echo "$(PYTHON)" | sed -n 's/^python\([0-9][0-9.]*\)$$/\1/p'); \
	  if [ -n "$$v" ] && p=$$(pyenv prefix "$$v" 2>/dev/null); then py="$$p/bin/python$$v"; fi; \
	fi; \
	if [ -z "$$py" ] || ! "$$py" -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13)' 2>/dev/null; then \
	  echo "PYTHON=$(PYTHON) is not a Python 3.11, 3.12 or 3.13 here; install one and pass PYTHON=/path/to/python3.x" >&2; exit 2; \
	fi; \
	want=$$("$$py" -c 'import sys; print(sys.version_info[:2])'); \
	have=$$($(PY) -c 'import sys; print(sys.version_info[:2])' 2>/dev/null || true); \
	if [ "$$want" != "$$have" ]; then \
	  echo "creating $(VENV) with $$py"; rm -rf $(VENV); "$$py" -m venv $(VENV); \
	fi
	$(PY) -m pip install --upgrade pip "uv==$(UV_VERSION)"
	$(PY) -m uv pip install --python $(PY) --no-deps --compile-bytecode -r $(LOCK) -e .
	$(PY) -c "import sn_tf.layers, tf_agents, gymnasium, ale_py, minatar"
	touch $(STAMP)

# Resolves setup.cfg (extras cpu, test) with the overrides for Python 3.11-3.13
# on every platform, into the lock that `install` takes.
lock:
	test -x $(PY) || $(MAKE) install
	$(PY) -m uv pip compile --universal --python-version 3.11 setup.cfg \
	  --extra cpu --extra test $(OVERRIDES) --custom-compile-command "make lock" \
	  -o $(LOCK)

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
