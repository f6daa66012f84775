# Task runner. `make setup` then `make up` bring the dev stack up on a fresh machine; `make test` runs the tests.
SHELL := /bin/bash
STACK ?= dev
PREFECT_PORT ?= 4200
# Local Pulumi state in this folder (no Pulumi account needed) and an empty passphrase for the dev stack.
# For a shared stack, set PULUMI_BACKEND_URL and PULUMI_CONFIG_PASSPHRASE(_FILE) yourself.
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi
ifeq ($(origin PULUMI_CONFIG_PASSPHRASE_FILE),undefined)
export PULUMI_CONFIG_PASSPHRASE ?=
endif

.PHONY: setup up down server server-stop run-once test lint test-services

setup: ## install the locked dependencies, a local Pulumi backend and the stack, and start a local Prefect server
	uv sync --locked
	mkdir -p .pulumi
	pulumi stack select --create $(STACK)
	$(MAKE) server

up: ## build the image and create the pool, worker and deployment
	pulumi up --yes --stack $(STACK)

down: ## destroy everything the stack created, then stop the local Prefect server
	pulumi destroy --yes --stack $(STACK)
	$(MAKE) server-stop

# Not `prefect server start --background`: it pipes the server's output to a process that exits, and the
# server dies at its first log line.
server: ## a local Prefect server on 0.0.0.0 (containers reach it through host.docker.internal); log in .prefect-server.log
	@if curl -fsS http://127.0.0.1:$(PREFECT_PORT)/api/health >/dev/null 2>&1; then \
		echo "Prefect server already answers on :$(PREFECT_PORT)"; \
	else \
		setsid nohup .venv/bin/prefect server start --host 0.0.0.0 --port $(PREFECT_PORT) >.prefect-server.log 2>&1 & \
		echo $$! >.prefect-server.pid; \
		for i in $$(seq 90); do curl -fsS http://127.0.0.1:$(PREFECT_PORT)/api/health >/dev/null 2>&1 && \
			echo "Prefect server up: http://127.0.0.1:$(PREFECT_PORT)" && exit 0; sleep 1; done; \
		echo "the Prefect server did not answer on :$(PREFECT_PORT) within 90 s; see .prefect-server.log"; exit 1; \
	fi

server-stop:
	@if [ -f .prefect-server.pid ]; then kill -- -$$(cat .prefect-server.pid) 2>/dev/null || true; rm -f .prefect-server.pid; fi

run-once: ## run the flow once here, against the real Bored API, and print the activity
	uv run python -m flows.suggest_activity

test: ## the whole test suite (needs Docker; in CI scripts/test-services.sh starts it)
	uv sync --locked
	uv run pytest

lint:
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy flows infra worker

test-services: ## Debian/root only: install and start dockerd, a loopback registry and the base image stand-in
	bash scripts/test-services.sh
