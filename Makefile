# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv if it is missing and install the package into it (CPU torch pinned by constraints.txt).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: demo test install clean-venv docs browser-test

demo: $(STAMP)
	$(BIN)/powerset-align demo --out runs/demo

test: $(STAMP)
	$(BIN)/python tools/check.py

docs: $(STAMP)
	$(BIN)/python tools/check.py --docs-only

# Not part of `make test`: runs every notebook with a widget in JupyterLab in headless Chromium (Debian's chromium via
# apt-get, playwright via pip, both installed on first use), moves each control, and opens every docs page.
browser-test: $(STAMP)
	$(BIN)/python tools/browser_test.py

install: $(STAMP)

$(STAMP): setup.py settings.ini constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: '$(PYTHON)' was not found. powerset_align needs Python >= 3.10; run make PYTHON=/path/to/python3.10+"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "error: powerset_align needs Python >= 3.10, but '$(PYTHON)' is $$($(PYTHON) --version 2>&1). Run make PYTHON=/path/to/python3.10+"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip setuptools wheel
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $@

clean-venv:
	rm -rf $(VENV)
