# The two commands of the README: `make up STACK=<env>` (the main job) and `make test`.
STACK ?= dev
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
# A local file backend inside the project, unless you chose another one (PULUMI_BACKEND_URL).
export PULUMI_BACKEND_URL ?= file://$(CURDIR)/.pulumi-state
# Local stacks encrypt their secrets with this passphrase; set your own for anything shared.
export PULUMI_CONFIG_PASSPHRASE ?=
export PULUMI_SKIP_UPDATE_CHECK := 1
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true

# `make up STACK=dev CLUSTER=local`: deploy to the local control plane of `make cluster` instead of the
# cluster (or render directory) the stack file names; its state lives with that cluster, in .cluster/state.
CLUSTER_DIR ?= $(CURDIR)/.cluster
STACK_FILE := stacks/Pulumi.$(STACK).yaml
ifeq ($(CLUSTER),local)
export PULUMI_BACKEND_URL := file://$(CLUSTER_DIR)/state
STACK_FILE := $(CLUSTER_DIR)/Pulumi.$(STACK).yaml
STACK_CONFIG := --config-file $(STACK_FILE)
export PATH := $(CLUSTER_DIR)/bin:$(PATH)
endif
NAMES_A_CLUSTER = grep -Eq '^[[:space:]]+kubernetes:(kubeconfig|context):' $(STACK_FILE)

.PHONY: bootstrap stack up preview plan destroy test lint bench cluster cluster-toolchain cluster-down cluster-status
bootstrap:
	@toolchain/bootstrap.sh

stack: bootstrap
	@case "$$PULUMI_BACKEND_URL" in file://*) mkdir -p "$${PULUMI_BACKEND_URL#file://}";; esac
ifeq ($(CLUSTER),local)
	@python3 -m toolchain.cluster stack-file $(STACK) --dir $(CLUSTER_DIR) >/dev/null
endif
	@pulumi stack select --create $(STACK) --non-interactive >/dev/null

## make up STACK=dev: perform the rollout step the stack file describes (renders to rendered/<stack>/ without a cluster)
# First: drop the lock of a killed `up` (only if its process is gone). With a cluster (the stack file names
# kubernetes:kubeconfig or kubernetes:context), refresh: hand edits are then seen and undone, and creates a
# killed `up` left pending are dropped (this `up` creates or adopts those objects). Rendered stacks have
# nothing to refresh from.
up: stack
	@meshkit unlock $(STACK)
	@if $(NAMES_A_CLUSTER); then \
	  pulumi refresh --yes --skip-preview --clear-pending-creates --stack $(STACK) --non-interactive $(STACK_CONFIG); fi
	pulumi up --yes --skip-preview=false --stack $(STACK) --non-interactive $(STACK_CONFIG)

## make preview STACK=dev: show the plan, change nothing
preview: stack
	pulumi preview --diff $$($(NAMES_A_CLUSTER) && echo --refresh) --stack $(STACK) --non-interactive $(STACK_CONFIG)

## make plan STACK=dev: what the next `up` changes against the last deployment, and drift (hand edits)
plan: stack
	meshkit plan $(STACK_FILE) --base deployed

destroy: stack
	@meshkit unlock $(STACK)
	pulumi destroy --yes --stack $(STACK) --non-interactive $(STACK_CONFIG)

## make cluster: a local Kubernetes control plane (kwok nodes, Istio CRDs) on loopback; writes .cluster/kubeconfig
cluster:
	@python3 -m toolchain.cluster up --dir $(CLUSTER_DIR)

cluster-toolchain:
	@toolchain/build-cluster.sh >/dev/null

cluster-down:
	@python3 -m toolchain.cluster down --dir $(CLUSTER_DIR)

cluster-status:
	@python3 -m toolchain.cluster status --dir $(CLUSTER_DIR)

## make test: every test tier, the real-engine end-to-end tier included
test: bootstrap cluster-toolchain
	$(VENV)/bin/python -m pytest

## make bench: every benchmark (about 30 minutes); writes BENCHMARKS.md and bench/mock_cost.png
bench: bootstrap
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	$(VENV)/bin/python -m bench.run

lint: bootstrap
	$(VENV)/bin/ruff check meshkit tests toolchain bench __main__.py
	$(VENV)/bin/mypy
