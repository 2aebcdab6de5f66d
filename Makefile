# infercam: `make book` and `make test` work from a clean clone; `make help` lists every target.
# GNU make. Everything runs in .venv, which the first target that needs it creates.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# Prerequisites run left to right (book = data, then notebooks, then the build), even under -j.
.NOTPARALLEL:

PROFILE ?= cpu
PYTHON ?= python3
PYTEST_ARGS ?=
DATA_ROOT ?= data
# Saliency maps have no stable public address: data-paper passes this archive to get_saliency.py.
SALIENCY_ARCHIVE ?=
GRID ?= ablations/cam_methods.yaml
SEEDS ?= 0 1 2
NOTEBOOKS ?= notebooks
EXERCISES_DIR ?= build/exercises

VENV := .venv
PY := $(VENV)/bin/python
# Lives inside .venv, so deleting .venv also forgets that it was installed.
VENV_STAMP := $(VENV)/.infercam-installed
EXECUTED := build/executed/$(PROFILE)
# The offline profiles generate mini-VOC; the paper profile needs `make data-paper` beforehand (the
# rehearsal, `make rehearsal`, fetches its fakes itself).
BOOK_DATA := $(if $(filter paper rehearsal,$(PROFILE)),,minivoc)
# apt-get needs root: CI runs as root, where sudo is often absent; elsewhere sudo must not prompt.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)

.PHONY: help venv browser minivoc notebooks ablations seeds book book-only test data-paper rehearsal clean lab prerequisites exercises

help: ## list the targets
	@echo "Targets (PROFILE=$(PROFILE); smoke, cpu or paper; e.g. make book PROFILE=smoke):"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

venv: $(VENV_STAMP) ## create .venv (if missing) and install infercam with its pinned dependencies

$(VENV_STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -e '.[dev]'
	@touch $@

browser: ## install Chromium with apt-get for the browser tests, unless present (or INFERCAM_SKIP_BROWSER=1)
	@if [ "$${INFERCAM_SKIP_BROWSER:-}" = 1 ] || command -v chromium >/dev/null; then exit 0; fi; \
	  command -v apt-get >/dev/null || { echo "error: no chromium and no apt-get: install Chromium yourself," \
	    "or set INFERCAM_SKIP_BROWSER=1 to skip the browser tests" >&2; exit 1; }; \
	  echo "installing chromium (headless browser for tests/test_book_browser.py)"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

minivoc: venv ## generate mini-VOC into the profile's data_root
	$(PY) data_scripts/make_minivoc.py --profile $(PROFILE)

notebooks: venv ## execute every notebook with papermill into build/executed/<profile>/
	$(PY) -m infercam.notebooks --profile $(PROFILE)

ablations: venv ## run the ablation grid (GRID=ablations/cam_methods.yaml) with papermill; skips finished rows
	$(PY) -m infercam.ablations --profile $(PROFILE) --grid $(GRID)

prerequisites: venv ## run exactly the chapters CHAPTER (e.g. 03_iterative) reads from that have not run for PROFILE
	@test -n "$(CHAPTER)" || { echo "error: name the chapter: make prerequisites CHAPTER=03_iterative PROFILE=$(PROFILE)" >&2; exit 2; }
	$(PY) -m infercam.prerequisites --chapter $(CHAPTER) --profile $(PROFILE)

lab: venv ## start JupyterLab on NOTEBOOKS (default notebooks; each chapter says what to run first when it needs to)
	@# Jupyter refuses to run as root unless told (containers and CI machines often are root).
	$(VENV)/bin/jupyter lab --notebook-dir=$(NOTEBOOKS) $(if $(filter 0,$(shell id -u)),--allow-root,)

exercises: venv ## write student copies of the chapters (solutions replaced by stubs) into EXERCISES_DIR
	$(PY) -m infercam.student_copies --out $(EXERCISES_DIR)

seeds: venv $(BOOK_DATA) ## rerun each chapter that trains a network (01-04, 06-08) under each of SEEDS="0 1 2"; each difference's spread
	$(PY) -m infercam.seeds --profile $(PROFILE) --seeds $(SEEDS)

book: venv $(BOOK_DATA) notebooks book-only ## venv + data + notebooks + build the book (warnings are errors)

book-only: venv ## build the book from the notebooks already executed for the profile
	$(PY) -m infercam.notebooks --profile $(PROFILE) --stage-book
	$(VENV)/bin/jupyter-book build book --all -W --keep-going
	@echo "The book: $(abspath book/_build/html/index.html)"

test: venv browser ## run the test suite (PYTEST_ARGS="-k env" to pass options)
	@# pytest exits 5 when it collected nothing: that is a failure, and it should say so.
	@rc=0; $(PY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; exit $$rc

data-paper: venv ## download VOC 2012, SBD (+ train_aug), psa weights, saliency maps into data/
	$(PY) data_scripts/get_voc.py --root $(DATA_ROOT)
	$(PY) data_scripts/get_sbd.py --root $(DATA_ROOT)
	$(PY) data_scripts/get_psa_weights.py --root $(DATA_ROOT)
	$(PY) data_scripts/get_saliency.py --root $(DATA_ROOT) $(if $(SALIENCY_ARCHIVE),--archive $(SALIENCY_ARCHIVE))

rehearsal: venv ## the paper profile on fakes from 127.0.0.1: data-paper, every notebook, ablations, the book
	$(PY) -m infercam.rehearsal --profile rehearsal
	$(MAKE) notebooks ablations book-only PROFILE=rehearsal

clean: ## remove executed notebooks and the built book (keeps .venv, data/ and runs/)
	rm -rf build book/_build book/notebooks
