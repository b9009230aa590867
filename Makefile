# `make demo` and `make test` each do the whole set-up on a fresh machine, then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= experiments/configs/quick.yaml
# the versions the test suite passed with; `make lock` refreshes them (see constraints.txt's header)
LOCK   := constraints.txt

.PHONY: demo test bench install lock clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	# the CPU build of torch first: a plain `torch` requirement would pull the CUDA build
	$(PY) -m pip install --quiet -c $(LOCK) torch==2.13.0
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[test]'
	touch $@

install: $(STAMP)

RUN    ?= runs/$(basename $(notdir $(CONFIG)))

demo: $(STAMP)
	$(VENV)/bin/srnas run -c $(CONFIG)
	# the winner against the zoo, in the executor the run chose, appended to its report.md
	$(VENV)/bin/srnas bench --run $(RUN)

# the quick subset on every core, then the end-to-end runs one at a time: they time executors, and a
# neighbour's load moves what they measure (a front run's tiny LUT then priced every pruned variant alike)
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --durations=10
	$(PY) -m pytest -q -m slow -n 0 --durations=10

# newest releases of every dependency in a scratch venv, frozen into $(LOCK); then `make clean test` and commit
lock:
	rm -rf .lockvenv
	$(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install --quiet torch==2.13.0
	.lockvenv/bin/python -m pip install --quiet -e '.[test]'
	{ sed -n '/^#/p' $(LOCK); .lockvenv/bin/python -m pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) runs
