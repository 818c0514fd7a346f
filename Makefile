# Two commands do all the setup on a fresh machine:
#   make demo   virtualenv + install, bake the default project, train it, compare the two paths
#   make test   virtualenv + install, run the template's tests (which bake and test the projects)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO   := build/demo
# The baked project's own pyproject.toml is the one list of runtime dependencies: these bakes (one per
# logger that brings a package of its own) read it.
DEPS   := build/deps

.PHONY: demo test bench install clean

install: $(VENV)/.installed

$(VENV)/.installed: cookiecutter.json $(wildcard {{cookiecutter.project_slug}}/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# Pinned to the builds this project is tested with; on a machine of your own, pick the build for your CUDA.
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet cookiecutter pytest pytest-xdist pytest-timeout
	rm -rf $(DEPS)
	$(PY) -m cookiecutter --no-input --output-dir $(DEPS)/wandb . > /dev/null
	$(PY) -m cookiecutter --no-input --output-dir $(DEPS)/tensorboard . logger=tensorboard > /dev/null
	$(PIP) install --quiet $(DEPS)/wandb/digits-classifier[dev]
	$(PIP) install --quiet $(DEPS)/tensorboard/digits-classifier[dev]  # same name: replaces it, adds tensorboard
	$(PIP) uninstall --quiet --yes digits-classifier  # keep the deps, drop the scratch package
	touch $@

demo: install
	rm -rf $(DEMO)
	$(PY) -m cookiecutter --no-input --output-dir $(DEMO) .
	$(PIP) install --quiet --no-deps -e $(DEMO)/digits-classifier
	cd $(DEMO)/digits-classifier && ../../../$(PY) train.py
	cd $(DEMO)/digits-classifier && ../../../$(PY) compare.py --json compare.json
	@echo "The baked project: $(DEMO)/digits-classifier (loss curves: compare.png, figures: compare.json)"

# Two baked suites at a time (xdist); every test has a time limit, and a stall prints every thread's stack.
test: install
	$(PY) -m pytest -q -n auto --timeout 1500 tests

# Not a test: it prints figures (P1-P3, benchmarks/bench.py) and never fails on them.
bench: install
	$(PY) benchmarks/bench.py

clean:
	rm -rf build $(VENV)
