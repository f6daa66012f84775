# Task runner. `make up` brings the dev stack up on a fresh clone (it does whatever setup is missing);
# `make test` runs the tests. The Pulumi targets wrap the plain commands named beside them.
SHELL := /bin/bash
STACK ?= dev
# The dev stack's local Prefect server (scripts/dev_server.py). It listens on every address because containers
# reach it through host.docker.internal, and it requires a login generated once into $(DEV_SERVER_DIR)/auth.
PREFECT_HOST ?= 0.0.0.0
PREFECT_PORT ?= 4200
DEV_SERVER_DIR ?= $(CURDIR)/.dev-server
DEV_SERVER = uv run --locked python scripts/dev_server.py --dir "$(DEV_SERVER_DIR)" --host $(PREFECT_HOST) --port $(PREFECT_PORT)
# Pulumi state in this folder (no Pulumi account needed) unless PULUMI_BACKEND_URL names another backend.
LOCAL_BACKEND := file://$(CURDIR)/.pulumi
export PULUMI_BACKEND_URL ?= $(LOCAL_BACKEND)
# Only the dev stack gets an empty passphrase: its one secret is the login of a server on this machine.
ifeq ($(STACK),dev)
ifeq ($(origin PULUMI_CONFIG_PASSPHRASE_FILE),undefined)
export PULUMI_CONFIG_PASSPHRASE ?=
endif
DEV_TARGETS := server dev-config
endif

.PHONY: up setup deps stack passphrase server dev-config down server-stop run-once test test-random lint test-services screenshots

up: setup ## setup, then `pulumi up --yes --stack $(STACK)`: build the image, create the pool, worker and deployment
	pulumi up --yes --stack $(STACK)
ifeq ($(STACK),dev)
	@$(DEV_SERVER) info
endif

setup: deps stack $(DEV_TARGETS) ## dependencies, the stack (`pulumi stack select --create`) and, for dev, the local server

deps:
	uv sync --locked

stack: passphrase
	@if [ "$$PULUMI_BACKEND_URL" = "$(LOCAL_BACKEND)" ]; then mkdir -p .pulumi; fi
	pulumi stack select --create $(STACK)

# A stack's secrets are encrypted with its passphrase; refuse an empty one outside dev, before pulumi runs.
# Like pulumi (pkg/secrets/passphrase/manager.go, readPassphrase): a set PULUMI_CONFIG_PASSPHRASE wins over
# PULUMI_CONFIG_PASSPHRASE_FILE, whose content is trimmed.
passphrase:
	@if [ -n "$${PULUMI_CONFIG_PASSPHRASE+set}" ]; then phrase=$$PULUMI_CONFIG_PASSPHRASE; \
	elif [ -r "$$PULUMI_CONFIG_PASSPHRASE_FILE" ]; then phrase=$$(cat "$$PULUMI_CONFIG_PASSPHRASE_FILE"); \
	else phrase=; fi; \
	if [ "$(STACK)" != dev ] && [ "$$PULUMI_BACKEND_URL" = "$(LOCAL_BACKEND)" ] && [ -z "$${phrase//[[:space:]]/}" ]; then \
		echo "Refusing stack '$(STACK)': its secrets would be encrypted with an empty passphrase in ./.pulumi." >&2; \
		echo "  Give it a passphrase:  export PULUMI_CONFIG_PASSPHRASE_FILE=~/.config/suggest-activity/$(STACK).passphrase" >&2; \
		echo "                    or:  export PULUMI_CONFIG_PASSPHRASE='<passphrase>'" >&2; \
		echo "  or use another backend: export PULUMI_BACKEND_URL=s3://<bucket> (or https://api.pulumi.com, ...)" >&2; \
		exit 1; \
	fi

# The dev stack talks to the server `make server` runs: its address and its login (a secret, read from the
# file on stdin, never on a command line). Written only when they differ, so Pulumi.dev.yaml stays still.
dev-config: server stack
	@url=$$($(DEV_SERVER) api-url); \
	if [ "$$(pulumi config get prefect:apiUrl --stack dev 2>/dev/null)" != "$$url" ]; then \
		pulumi config set prefect:apiUrl "$$url" --stack dev; fi; \
	if [ "$$(pulumi config get prefect:authString --stack dev 2>/dev/null)" != "$$(cat "$(DEV_SERVER_DIR)/auth")" ]; then \
		pulumi config set --secret prefect:authString --stack dev <"$(DEV_SERVER_DIR)/auth"; fi

down: passphrase $(if $(DEV_TARGETS),server) ## `pulumi destroy --yes --stack $(STACK)`, then, for dev, stop the local server
	pulumi destroy --yes --stack $(STACK)
ifeq ($(STACK),dev)
	@$(DEV_SERVER) stop
endif

server: ## start the local Prefect server (or reuse it) and print its UI address and login; log in $(DEV_SERVER_DIR)
	@$(DEV_SERVER) start

server-stop: ## stop the local Prefect server `make server` started (its login stays)
	@$(DEV_SERVER) stop

run-once: ## run the flow once here, against the real Bored API, and print the activity
	uv run python -m flows.suggest_activity

test: ## the whole test suite (needs Docker; in CI scripts/test-services.sh starts it)
	uv sync --locked
	uv run pytest

test-random: ## the suite in a random order (journey steps keep theirs); SEED=<n> repeats the order a run printed
	uv sync --locked
	uv run pytest --random-order-bucket=module $(if $(SEED),--random-order-seed=$(SEED))

lint: ## ruff, mypy, and the GitHub Actions workflows: actionlint (with shellcheck on run: scripts) and zizmor
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy flows infra worker
	uv run actionlint
	uv run zizmor --offline --quiet .github

test-services: ## Debian/root only: install and start dockerd, a loopback registry, the base image stand-in, chromium
	bash scripts/test-services.sh

screenshots: ## regenerate docs/ui-deployment.png and docs/ui-artifact.png in a real browser (needs Docker and chromium)
	UI_SCREENSHOTS=1 uv run pytest tests/test_ui_browser.py
