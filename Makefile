# Two commands for a fresh machine (see README): `make run` and `make test`.
# Every target is idempotent: the virtualenv and the Weaviate build are made once and reused.

PYTHON ?= python3
VENV := .venv
WEAVIATE_VERSION := v1.39.3
WEAVIATE_BIN := .cache/weaviate/bin/weaviate-server
STAMP := $(VENV)/.installed

.PHONY: run test setup weaviate postgres chromium lint bench clean

run: setup
	$(VENV)/bin/python main.py chat --index-first

test: setup postgres chromium
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/mypy configs data services simple_agents main.py

# docs/architecture.md from the code (tests/test_architecture.py fails while it is stale).
.PHONY: architecture
architecture: $(STAMP)
	$(VENV)/bin/python tests/architecture_map.py --write

setup: $(STAMP) weaviate

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The official Weaviate server, built from its Go module (no Docker, no binary download).
# v1.39.3 is the newest 1.39 release whose dependencies (weaviate/sroar v0.0.16) the Go proxy serves.
weaviate: $(WEAVIATE_BIN)

$(WEAVIATE_BIN):
	@echo "Building Weaviate $(WEAVIATE_VERSION) from its Go module (once; a few minutes)..."
	mkdir -p $(dir $(WEAVIATE_BIN))
	GOBIN=$(abspath $(dir $(WEAVIATE_BIN))) CGO_ENABLED=0 go install github.com/weaviate/weaviate/cmd/weaviate-server@$(WEAVIATE_VERSION)

# The conversation-store tests also run against a throwaway PostgreSQL cluster (initdb + pg_ctl).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  echo "Installing PostgreSQL (Debian package postgresql) for the tests..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql; }

# The admin page's browser test (tests/test_insights_browser.py) drives Debian's chromium through
# Playwright (no browser download); the emoji font makes 👍/👎 show in its screenshots.
chromium:
	@command -v chromium >/dev/null 2>&1 && [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || { \
	  echo "Installing Chromium (Debian packages chromium, fonts-noto-color-emoji) for the browser test..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-color-emoji; }

bench: setup
	$(VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) .cache .data
