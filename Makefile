# Two commands do all the setup on a fresh machine:
#   make demo   virtualenv + install, bake the default project, train it, compare the rungs
#   make test   virtualenv + install, run the template's tests (which bake and test the projects)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEMO   := build/demo
# The baked project's own pyproject.toml is the one list of runtime dependencies: these bakes (one per
# logger that brings a package of its own) read it.
DEPS   := build/deps

.PHONY: demo test test-all coverage coverage-quick bench bench-serve stress install clean

# Prints the dependencies and the dev extras of the pyproject.toml files it is given, once each.
define LIST_DEPENDENCIES
import sys, tomllib
deps = set()
for path in sys.argv[1:]:
    project = tomllib.load(open(path, "rb"))["project"]
    deps |= {*project["dependencies"], *project["optional-dependencies"]["dev"]}
print(" ".join(sorted(deps)))
endef
export LIST_DEPENDENCIES

install: $(VENV)/.installed

$(VENV)/.installed: cookiecutter.json $(wildcard {{cookiecutter.project_slug}}/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	# Pinned to the builds this project is tested with; on a machine of your own, pick the build for your CUDA.
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1 cookiecutter cruft pytest pytest-xdist pytest-timeout pytest-cookies
	rm -rf $(DEPS)
	$(PY) -m cookiecutter --no-input --output-dir $(DEPS)/wandb . > /dev/null
	$(PY) -m cookiecutter --no-input --output-dir $(DEPS)/tensorboard . logger=tensorboard > /dev/null
	# One install of what both bakes list (dependencies and dev tools), without building the project itself.
	$(PIP) install --quiet $$($(PY) -c "$$LIST_DEPENDENCIES" $(DEPS)/*/digits-classifier/pyproject.toml)
	touch $@

demo: install
	rm -rf $(DEMO)
	$(PY) -m cookiecutter --no-input --output-dir $(DEMO) .
	cd $(DEMO)/digits-classifier && ../../../$(PY) train.py
	cd $(DEMO)/digits-classifier && ../../../$(PY) -m ladder.compare --json compare.json
	@echo "The baked project: $(DEMO)/digits-classifier (loss curves: compare.png, figures: compare.json)"

# Two baked suites at a time (xdist; loadgroup: a worker that runs low takes the next test of the list,
# longest first, so the two slow halves start at once, on the two workers); every test has a time limit,
# and a stall prints every thread's stack.
test: install
	$(PY) -m pytest -q -n auto --dist loadgroup --timeout 600 tests

# Every data set's bake, each with a logger, and its whole suite, one after the other: a table of bake,
# passed, failed and time. Longer than `make test`, which runs the whole suite of the default bake only.
test-all: install
	$(PY) scripts/test_all.py

# The template's suite under coverage.py, every process it starts measured: the table per file of the baked
# projects' own code, the union over every bake (benchmarks/coverage.py). Prints, never fails on a figure.
coverage: install
	$(PIP) install --quiet coverage
	$(PY) benchmarks/coverage.py

# The default bake's own quick tier under coverage: the figure of what `pytest -m "not slow"` covers.
coverage-quick: install
	$(PIP) install --quiet coverage
	$(PY) benchmarks/coverage.py --default_bake -- -m "not slow"

# Not a test: it prints figures (P1-P3, F1-F2, B1-B2: benchmarks/bench.py) and never fails on them.
bench: install
	$(PY) benchmarks/bench.py

# Figures of the demo's exported and served model: ONNX Runtime / eager at batch 1 and 64, and deploy/serve.py's
# requests per second and p99 with dynamic batching and with --max_batch_size 1. Prints, never fails on them.
bench-serve: demo
	cd $(DEMO)/digits-classifier && ../../../$(PY) -m deploy.bench_inference --ckpt_path $$(ls -t runs/*/checkpoints/best.* | head -1)

# Not a test either: DDP runs of every data set under load, counted as passed, failed or hung.
STRESS_RUNS ?= 10
stress: install
	$(PY) benchmarks/stress_ddp.py --runs $(STRESS_RUNS)

clean:
	rm -rf build $(VENV)
