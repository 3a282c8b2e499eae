# The two commands of the README contract: `make demo` and `make test`.
# Each builds its own virtual environment on first use (CPU-only torch from the local wheel).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: demo test unit docs examples bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,docs,plot,models]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m tropix analyze

test: $(STAMP)
	$(MAKE) docs examples unit

unit: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --timeout=600 -q

docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

examples: $(STAMP)
	$(PY) examples/run_examples.py --fast

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .hypothesis
