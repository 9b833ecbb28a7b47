# Two entry points for a fresh machine (Python 3.11+):
#   make up    -> the whole pipeline on embedded defaults (broker + Postgres + webhook + worker)
#   make test  -> the test suite against a real broker and Postgres (started embedded)
#   make demo  -> (with `make up` running) a minute of a simulated sales line for the dashboard
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)

.PHONY: up demo test lint bench install clean browser

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev,rocksdb]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/leadstream up

demo: $(STAMP)
	$(BIN)/leadstream simulate --rate 8 --duration 60

test: $(STAMP) browser
	$(BIN)/ruff check leadstream tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider
	@echo "--- the Tansu subset (embedded-broker workarounds, end-to-end smoke, fault suite)"
	LEADSTREAM_EMBEDDED_BROKER=tansu $(BIN)/pytest -q -p no:cacheprovider -m tansu

# Debian's Chromium for the dashboard browser test, Debian's Caddy to check the production
# Caddyfile, Debian's Prometheus (prometheus, promtool) for the alert rules; where they cannot
# be installed (no apt-get, not root, no network) those tests skip and say why
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get install -y -q chromium >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
	  || echo "chromium could not be installed: the browser test will be skipped"; }
	@command -v caddy >/dev/null 2>&1 || apt-get install -y -q caddy >/dev/null 2>&1 \
	  || echo "caddy could not be installed: the Caddyfile check will be skipped"
	@command -v promtool >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends \
	  prometheus >/dev/null 2>&1 \
	  || echo "prometheus could not be installed: the alert-rule and Prometheus tests will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check leadstream tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install -q -c requirements.lock -e '.[bench]'
	$(BIN)/python bench/suite.py --profile --json bench/last-run.json

clean:
	rm -rf $(VENV) .leadstream
