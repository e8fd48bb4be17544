# Two commands do everything on a fresh machine: `make train` and `make check`.
# Each target creates .venv first when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The pinned PyTorch pair that installs here from local wheels; other machines take the same pins.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Jupyter refuses to start as root (containers, CI) unless told to.
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help venv train check test notebooks-check notebooks sync lab student bench clean

help:
	@echo "make train     train the course VAE (offline sample if full MNIST is unreachable)"
	@echo "make check     every test and every notebook (smoke setting)"
	@echo "make lab       JupyterLab on notebooks/"
	@echo "make notebooks re-execute every notebook with full settings and save outputs"
	@echo "make sync      bring each notebook's .ipynb in step with its .py"
	@echo "make student   student versions of the notebooks in build/student/"
	@echo "make bench     training-speed benchmark against the original notebook's pipeline"
	@echo "make clean     remove .venv, build/ and caches (runs/ is kept)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS) -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python -m vaelib train

check: $(STAMP)
	VAELIB_SMOKE=1 MPLBACKEND=Agg $(BIN)/python -m pytest tests $(NOTEBOOKS) --nbval-lax -p no:cacheprovider

test: $(STAMP)
	$(BIN)/python -m pytest tests -p no:cacheprovider

notebooks: $(STAMP)
	cd notebooks && for nb in $(notdir $(NOTEBOOKS)); do \
	  ../$(BIN)/jupytext --sync $${nb%.ipynb}.py && \
	  ../$(BIN)/jupytext --execute --set-kernel python3 $$nb || exit 1; done

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.py

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_FLAGS)

student: $(STAMP)
	$(BIN)/python tools/make_student.py --out build/student

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) build .pytest_cache *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
