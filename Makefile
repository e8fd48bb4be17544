# Two commands do everything on a fresh machine: `make train` and `make check`.
# Each target creates .venv first when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The pinned PyTorch pair that installs here from local wheels; other machines take the same pins.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# The instructor's notebooks (solutions/, the source) and the student notebooks made from them (what Binder opens).
SOLUTIONS := $(sort $(wildcard notebooks/solutions/[0-9][0-9]_*.ipynb))
STUDENT := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
NOTEBOOKS := $(STUDENT) $(SOLUTIONS)
# Progress bars off where outputs are kept or compared: a tqdm widget is saved frozen at 0%.
QUIET := VAELIB_PROGRESS=0
# Jupyter refuses to start as root (containers, CI) unless told to.
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help venv train check test notebooks binder sync lab student bench clean

help:
	@echo "make train     train the course VAE (offline sample if full MNIST is unreachable)"
	@echo "make check     every test and every notebook (smoke setting)"
	@echo "make lab       JupyterLab on notebooks/"
	@echo "make notebooks re-execute every notebook on full MNIST with full settings and save outputs"
	@echo "make sync      bring each instructor notebook's .ipynb in step with its .py"
	@echo "make student   write the student notebooks from the instructor's (without outputs)"
	@echo "make binder    every student notebook under Binder's limits (2 GB, one CPU), full settings"
	@echo "make bench     training-speed benchmark against the original notebook's pipeline"
	@echo "make clean     remove .venv, build/ and caches (runs/ is kept)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# setuptools warns about every flat-layout editable install ("Editable installation"): nothing to act on
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet $(TORCH_PINS) -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python -m vaelib train

# In parallel (pytest-xdist): one worker per CPU this process may use (vaelib/cpus.py counts the quota and the
# affinity mask), at most 4; none on one CPU. Each notebook runs whole in one worker
# and the long ones start first (conftest.py, at the top level). Each worker's processes get a fixed share of the
# CPUs as their thread count (OMP_NUM_THREADS), so that workers never wait on each other's threads and every run
# gives the same bits (vaelib.threads adapts only where no count is set).
USABLE_CPUS = $$($(BIN)/python -c "import runpy; print(runpy.run_path('vaelib/cpus.py')['usable_cpus']())")
CHECK_WORKERS = $$(n=$(USABLE_CPUS); if [ $$n -gt 1 ]; then echo $$(( n < 4 ? n : 4 )); else echo 0; fi)
CHECK_THREADS = $$(n=$(USABLE_CPUS); w=$$(( n < 4 ? n : 4 )); echo $$(( n / w > 1 ? n / w : 1 )))

check: $(STAMP)
	OMP_NUM_THREADS=$(CHECK_THREADS) VAELIB_SMOKE=1 VAELIB_DOWNLOAD=0 $(QUIET) MPLBACKEND=Agg $(BIN)/python -m pytest \
		-n $(CHECK_WORKERS) --dist loadscope --no-loadscope-reorder tests $(NOTEBOOKS) --nbval-lax -p no:cacheprovider

test: $(STAMP)
	$(BIN)/python -m pytest tests -p no:cacheprovider

# Committed outputs are full-MNIST ones: this stops at once without full MNIST (in VAELIB_DATA, or downloadable).
# Only the instructor notebooks are executed; the student notebooks are made from them, outputs and all,
# so that the two versions cannot print different numbers.
# VAELIB_DATA is made absolute, since the notebooks run in notebooks/, not here.
notebooks: export VAELIB_DATA := $(if $(VAELIB_DATA),$(abspath $(VAELIB_DATA)))
notebooks: $(STAMP)
	$(BIN)/python -c "from vaelib.data import load_full_mnist; load_full_mnist()"
	$(BIN)/jupytext --sync notebooks/solutions/[0-9][0-9]_*.py
	$(QUIET) VAELIB_ADAPT_THREADS=0 $(BIN)/python tools/execute_notebooks.py
	$(BIN)/jupytext --sync notebooks/solutions/[0-9][0-9]_*.ipynb
	$(BIN)/python tools/make_student.py --with-outputs

# Every student notebook at full settings under Binder's limits (2 GiB, no swap, one CPU), enforced by a
# control group (root and cgroup v1 here; systemd-run elsewhere); the table goes to benchmarks/results/.
binder: export VAELIB_DATA := $(if $(VAELIB_DATA),$(abspath $(VAELIB_DATA)))
binder: $(STAMP)
	$(BIN)/python tools/binder_limits.py --full --json benchmarks/results/binder_limits.json

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/solutions/[0-9][0-9]_*.py

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_FLAGS)

student: $(STAMP)
	$(BIN)/python tools/make_student.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) build .pytest_cache *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
