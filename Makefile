# `make run` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What the virtualenv installs: every package pinned with the hashes of its files (the container
# installs requirements.lock the same way). pyproject.toml keeps the ranges for library users.
LOCK := requirements-dev.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
CHROMIUM ?= /usr/bin/chromium
UV_VERSION := 0.13.9

.PHONY: run test lint typecheck imports pytest browser axe devidp bench bench-scale openapi translations lock clean

# A new virtualenv whenever pyproject.toml or the lock changed, so nothing unlocked lingers.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --only-binary :all: -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/consent-service dev

test: $(STAMP) browser axe devidp lint typecheck imports pytest

lint: $(STAMP)
	$(BIN)/ruff check service tests
	$(BIN)/ruff format --check service tests

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/python -m pytest

# Browser tests drive Debian's Chromium; install it when we may (root) and it is missing.
browser:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "chromium could not be installed; browser tests will be skipped"; \
	fi

# The accessibility tests inject axe-core (pinned in tests/axe/package-lock.json) into the
# guardian pages; without Node.js they are skipped and say so.
axe:
	@if command -v npm >/dev/null; then \
		npm ci --prefix tests/axe --no-audit --no-fund --silent \
			|| echo "axe-core could not be installed; accessibility tests will be skipped"; \
	else \
		echo "no npm: accessibility tests will be skipped"; \
	fi

# The development identity provider (devidp/, npm's oidc-provider pinned by package-lock.json)
# that the console's tests sign in through; `make run` installs it the same way when it starts.
devidp:
	@if command -v npm >/dev/null; then \
		cd devidp && npm ci --no-audit --no-fund --loglevel=error \
			&& sha256sum package-lock.json | cut -d' ' -f1 | tr -d '\n' > node_modules/.installed-lock; \
	else \
		echo "Node.js is missing: the support console's sign-in tests will be skipped (apt-get install nodejs npm)"; \
	fi

bench: $(STAMP)
	@if ! command -v wrk >/dev/null && [ "$$(id -u)" = "0" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	fi
	$(BIN)/python -m tests.bench

# Ten million consents (BENCH_SCALE_ROWS=10000,1000000 for less) in a throwaway PostgreSQL under
# $TMPDIR (about 2 GB per million consents): the check, request creation and the sweeps cost the
# same at every size, with the plans that show why.
bench-scale: $(STAMP)
	$(BIN)/python -m tests.bench_scale

openapi: $(STAMP)
	$(BIN)/consent-service openapi

# Guardian-facing texts: extract the English messages from the code and templates (babel.cfg)
# into the template catalog, merge it into every language's catalog, and compile them. The
# compiled .mo files are committed, so a fresh clone and the container need no build step.
# Start a language with `make translations NEW_LANGUAGE=de`, then translate its messages.po.
LOCALE_DIR := service/i18n/locale
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
translations: $(STAMP)
	$(BIN)/pybabel --quiet extract -F babel.cfg -o $(LOCALE_DIR)/messages.pot \
		--project=consent-service --version=$(VERSION) --add-location=file \
		--add-comments=TRANSLATORS: --header-comment="# Guardian-facing texts of consent-service, in English." .
	@if [ -n "$(NEW_LANGUAGE)" ]; then \
		$(BIN)/pybabel init -i $(LOCALE_DIR)/messages.pot -d $(LOCALE_DIR) -l $(NEW_LANGUAGE); \
	fi
	$(BIN)/pybabel --quiet update -i $(LOCALE_DIR)/messages.pot -d $(LOCALE_DIR) \
		--previous --ignore-pot-creation-date
	$(BIN)/pybabel compile -d $(LOCALE_DIR) --statistics

# Make requirements.lock and requirements-dev.lock again from pyproject.toml, with uv, keeping
# the versions already pinned where they still fit (UPGRADE=1: the newest that fit). A test fails
# while pyproject.toml's requirements differ from those the locks were made from.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/python -m tests.support.locks $(if $(UPGRADE),--upgrade)

clean:
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache tests/axe/node_modules
