# `make demo` and `make test` each do the whole set-up on a fresh machine, then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= experiments/configs/quick.yaml

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# the CPU build of torch first: a plain `torch` requirement would pull the CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

RUN    ?= runs/$(basename $(notdir $(CONFIG)))

demo: $(STAMP)
	$(VENV)/bin/srnas run -c $(CONFIG)
	# the winner against the zoo, in the executor the run chose, appended to its report.md
	$(VENV)/bin/srnas bench --run $(RUN)

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

clean:
	rm -rf $(VENV) runs
