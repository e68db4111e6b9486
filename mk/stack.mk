# Make targets for the Compose stack (included from the Makefile).
#
#   make network                 create the shared external network if it is missing
#   make up                      build the image and start API + workers, wait until healthy
#   make down                    stop and remove this repository's containers (data kept)
#   make logs                    follow the API and worker logs
#   make ps                      this repository's containers and their health
#   make submit BUILD=271360     submit a build and follow it to the end
#   make query [JOB=<job id>]    one job, or the recent jobs
#   make report                  job store report (works while the API is down)
#   make stack-config            the compose file as Compose resolves it with .env
#   make stack-test              the stack on a real Docker engine, end to end (tests/stack;
#                                installs and starts the engine when missing, ~10 min)
#
# Variables: COMPOSE (default `docker compose`), WORKERS (scale the workers for one `up`).

COMPOSE ?= docker compose
DOCKER ?= docker
STACK_NETWORK := defectdetect-database_default
# Label the network the way the database stack's Compose project would, so that stack
# can adopt it later instead of refusing a network "not created by compose".
STACK_NETWORK_LABELS := --label com.docker.compose.project=defectdetect-database \
	--label com.docker.compose.network=default
STACK_SERVICES := clf-abp-path-analysis clf-analysis-worker
WORKERS ?=

.PHONY: network up down logs ps submit query report stack-config stack-env stack-test

# .env holds MIDAS_HOST_PATH and the settings; start from the documented example.
stack-env:
	@test -f .env || { echo "no .env: run 'cp .env.example .env' and set MIDAS_HOST_PATH"; exit 1; }

network:
	@$(DOCKER) network inspect $(STACK_NETWORK) >/dev/null 2>&1 \
		&& echo "network $(STACK_NETWORK) exists" \
		|| $(DOCKER) network create $(STACK_NETWORK_LABELS) $(STACK_NETWORK)

up: stack-env network
	$(COMPOSE) up --detach --build --wait $(if $(WORKERS),--scale clf-analysis-worker=$(WORKERS)) $(STACK_SERVICES)

# No --remove-orphans and no --volumes: the other repositories' containers share the
# project name, and the job store lives in the named volume.
down: stack-env
	$(COMPOSE) down

logs: stack-env
	$(COMPOSE) logs --follow --tail=200 $(STACK_SERVICES)

ps: stack-env
	$(COMPOSE) ps $(STACK_SERVICES)

submit: stack-env
	@test -n "$(BUILD)" || { echo "usage: make submit BUILD=<build id>"; exit 2; }
	$(COMPOSE) run --rm clf-submit $(BUILD) --wait

query: stack-env
	$(COMPOSE) run --rm clf-query $(JOB)

report: stack-env
	$(COMPOSE) run --rm clf-report

stack-config: stack-env
	$(COMPOSE) config

# Not part of `make test`: it needs root (or a running engine) and several minutes. It
# prints its wall time; without an engine it skips, unless CI=true, where it fails.
stack-test: $(STAMP)
	@start=$$(date +%s); status=0; \
	$(BIN)/pytest tests/stack -p no:cacheprovider -rs --timeout=2400 || status=$$?; \
	echo "stack-test wall time: $$(( $$(date +%s) - start )) s"; exit $$status
