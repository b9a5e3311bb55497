# Two entry points (see README): `make demo` runs the main job on the embedded benchmark,
# `make test` runs the test suite. Both create/reuse the virtual environment in $(VENV).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= data/demo
STAMP := $(VENV)/.udaseg-installed

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is pinned in pyproject.toml; on this machine pip takes its local CPU build.
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/udaseg demo --data $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
