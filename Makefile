# The two set-up commands, on a fresh machine:
#   make lab    create .venv, install mlnb with its extras, start JupyterLab on the tutorials
#   make test   install everything the tests need, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q
LAB_ARGS ?=

.PHONY: lab test install-lab install-dev install-chromium check-extensions bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# torch is pinned to 2.13.0 in pyproject.toml: the CPU wheel; an unpinned torch
# would pull a multi-GB CUDA build.  Installing builds the JupyterLab extension
# (labextension/, with the machine's node and npm) and installs it with the server
# extension's config; a change to its sources installs again.
EXT_SOURCES = pyproject.toml labextension/package.json labextension/package-lock.json \
	$(wildcard labextension/src/*.ts labextension/style/*) jupyter-config/jupyter_server_config.d/mlnb.json

$(VENV)/.dev-installed: $(EXT_SOURCES) | $(PY)
	$(PIP) install -e ".[dev]"
	touch $@

$(VENV)/.lab-installed: $(EXT_SOURCES) | $(PY)
	$(PIP) install -e ".[lab]"
	touch $@

# jsdom lets tests/widgets run the panel's JavaScript in a DOM (node is required);
# configurable-http-proxy is JupyterHub's proxy, for tests/hub.
NODE_DIR = .cache/node
NODE_TOOLS = jsdom@26 configurable-http-proxy@5
$(NODE_DIR)/.installed: Makefile
	npm install --prefix $(NODE_DIR) --no-audit --no-fund --silent $(NODE_TOOLS)
	touch $@

install-dev: $(VENV)/.dev-installed $(NODE_DIR)/.installed

# tests/ui drives JupyterLab in Debian's chromium through Python playwright (no
# `playwright install`). Idempotent: apt-get runs only when chromium is missing.
install-chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

install-lab: $(VENV)/.lab-installed
	@$(MAKE) --no-print-directory check-extensions

# Fails unless Jupyter sees both of mlnb's extensions enabled (.ci/check-extensions).
check-extensions:
	.ci/check-extensions $(VENV)

lab: install-lab
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

test: install-dev install-chromium check-extensions
	$(VENV)/bin/ruff check src tests benchmarks
	cd labextension && npm test
	NODE_PATH=$(CURDIR)/$(NODE_DIR)/node_modules $(PY) -m pytest
	$(PY) -m pytest --nbval-lax -p no:randomly notebooks/

bench: install-dev
	$(PIP) install -e ".[bench]"
	$(PY) benchmarks/registry_vs_mlflow.py
	$(PY) benchmarks/storage_throughput.py

clean:
	rm -rf $(VENV) $(NODE_DIR) .pytest_cache build dist src/*.egg-info \
	  src/mlnb/labextension labextension/node_modules labextension/lib labextension/build-test
