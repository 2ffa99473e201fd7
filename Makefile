# Two entry points (README, Quick start): `make reconstruct` and `make test`.
# Both create the virtual environment on first use, and again whenever pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PHOTO ?=
OUT ?= out
FACEALBEDO_ASSETS ?= $(abspath ../shared/assets)
export FACEALBEDO_ASSETS

STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip>=24"
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $(STAMP)

.PHONY: setup reconstruct test benchmarks addon
setup: $(STAMP)

# Reconstruct PHOTO (default: scikit-image's public-domain astronaut portrait) into OUT/.
reconstruct: $(STAMP)
	$(VENV)/bin/facealbedo reconstruct $(if $(PHOTO),"$(PHOTO)",--example astronaut) --out "$(OUT)" --overwrite

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

benchmarks: $(STAMP)
	for b in benchmarks/*.py; do $(VENV)/bin/python $$b || exit 1; done

addon: $(STAMP)
	$(VENV)/bin/python build.py
