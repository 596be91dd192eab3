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
# The file backend rewrites the whole state after every resource operation, which makes an `up` quadratic in
# the stack's size (hours for 1000 services). With this it writes the state once, at the end of the update
# (an update that fails writes it too). A killed `up` then leaves the state of the update before it: the
# next `make up` or `make step` redoes the step (objects it had created are adopted: the provider upserts;
# rendered files it had written are overwritten, or removed by `meshkit unlock` when nothing declares them).
export PULUMI_SKIP_CHECKPOINTS ?= true
# How many resource operations the engine runs at once (its default: 4 per core). On a cluster most of an
# operation is waiting (for a Deployment to become available, for the API server), not computing: 150
# Deployments queued behind 8 slots made a first `up` of 50 services take minutes (BENCHMARKS.md).
export PULUMI_PARALLEL ?= 64

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
REFRESH_IF_CLUSTER = if $(NAMES_A_CLUSTER); then pulumi refresh --yes --skip-preview --clear-pending-creates --stack $(STACK) --non-interactive $(STACK_CONFIG); fi
# `make review` writes the review of a rollout step here (the CI artifact); `make apply` applies exactly it.
REVIEW_DIR ?= review/$(STACK)
REVIEW_ARGS := STACK=$(STACK)$(if $(CLUSTER), CLUSTER=$(CLUSTER))

.PHONY: bootstrap stack up step preview plan review apply destroy test lint docs docs-serve schema bench wheel cluster cluster-toolchain cluster-down cluster-status istio-toolchain system-packages graph-toolchain
bootstrap:
	@toolchain/bootstrap.sh

stack: bootstrap
	@case "$$PULUMI_BACKEND_URL" in file://*) mkdir -p "$${PULUMI_BACKEND_URL#file://}";; esac
ifeq ($(CLUSTER),local)
	@python3 -m toolchain.cluster stack-file $(STACK) --dir $(CLUSTER_DIR) >/dev/null
endif
	@pulumi stack select --create $(STACK) --non-interactive >/dev/null

## make up STACK=dev: perform the rollout step the stack file describes (renders to rendered/<stack>/ without a cluster)
# First: drop the lock of a killed `up` (only if its process is gone). Then the update of every object
# (`meshkit up --full`). With a cluster (the stack file names kubernetes:kubeconfig or kubernetes:context) it
# refreshes first what was changed in the cluster since the last update, so that hand edits are seen and undone
# (and creates a killed `up` left pending are dropped), and previews what changes: the API server's dry runs
# refuse a bad object before anything is written. Rendered stacks have nothing to refresh or dry-run.
up: stack
	@meshkit unlock $(STACK)
	meshkit up $(STACK_FILE) --full

## make step STACK=dev: the same rollout step as `make up`, with the engine targeted at what the stack file's
## change touches since the last deployment (`meshkit up`); falls back to a full `up` when it cannot tell
step: stack
	@meshkit unlock $(STACK)
	meshkit up $(STACK_FILE)

## make preview STACK=dev: show the plan, change nothing
preview: stack
	pulumi preview --diff $$($(NAMES_A_CLUSTER) && echo --refresh) --stack $(STACK) --non-interactive $(STACK_CONFIG)

## make plan STACK=dev: what the next `up` changes against the last deployment, and drift (hand edits)
plan: stack
	meshkit plan $(STACK_FILE) --base deployed

## make review STACK=dev: on the pull request, review/<stack>/ (the CI artifact): meshkit's plan, the engine's
## saved plan, and what both start from (the stack file's digest and every deployed resource's)
# Like `up`: unlock, and refresh a stack with a cluster, so that the review starts from what the cluster holds.
# The deployed state is recorded before planning and checked again after, so a review that raced a deployment
# fails instead of saving a plan made from another state.
review: stack
	@meshkit unlock $(STACK)
	@$(REFRESH_IF_CLUSTER)
	@rm -rf $(REVIEW_DIR)
	meshkit review record $(STACK_FILE) --dir $(REVIEW_DIR)
	@meshkit plan $(STACK_FILE) --base deployed >$(REVIEW_DIR)/plan.txt; s=$$?; cat $(REVIEW_DIR)/plan.txt; exit $$s
	@meshkit plan $(STACK_FILE) --base deployed --format markdown >$(REVIEW_DIR)/plan.md
	@pulumi preview --diff --save-plan $(REVIEW_DIR)/update-plan.json --stack $(STACK) --non-interactive $(STACK_CONFIG) \
	  >$(REVIEW_DIR)/preview.txt 2>&1; s=$$?; cat $(REVIEW_DIR)/preview.txt; exit $$s
	meshkit review verify $(STACK_FILE) --dir $(REVIEW_DIR) --replan "make review $(REVIEW_ARGS)"

## make apply STACK=dev: after the merge, deploy exactly the plan review/<stack>/ holds (`pulumi up --plan`);
## refused, deploying nothing, when the stack file or the deployed state moved since that review
apply: stack
	@meshkit unlock $(STACK)
	@$(REFRESH_IF_CLUSTER)
	meshkit review verify $(STACK_FILE) --dir $(REVIEW_DIR) --replan "make review $(REVIEW_ARGS)"
	pulumi up --yes --skip-preview=false --plan $(REVIEW_DIR)/update-plan.json --stack $(STACK) --non-interactive $(STACK_CONFIG)

destroy: stack
	@meshkit unlock $(STACK)
	pulumi destroy --yes --stack $(STACK) --non-interactive $(STACK_CONFIG)

## make cluster: a local Kubernetes cluster on loopback (Istio and Gateway API CRDs, istiod with its webhooks) and a
## real node (kubelet, containerd, Envoy sidecars; needs root) whose ingress gateway it prints; writes .cluster/kubeconfig.
## NODE=kwok: pods simulated instead (no traffic, no root, no image builds)
NODE ?= real
cluster: cluster-toolchain istio-toolchain
	@python3 -m toolchain.cluster up --dir $(CLUSTER_DIR) --node $(NODE)

# The Debian packages the real node and the tests need.
system-packages:
	@toolchain/system-packages.sh

# The control plane and kubelet; the node's containerd, runc and CNI plugins.
cluster-toolchain: system-packages
	@toolchain/build-cluster.sh >/dev/null
	@toolchain/build-node.sh >/dev/null

cluster-down:
	@python3 -m toolchain.cluster down --dir $(CLUSTER_DIR)

cluster-status:
	@python3 -m toolchain.cluster status --dir $(CLUSTER_DIR)

# istioctl and pilot-discovery (istiod), one pinned Istio build: the Istio tier (tests/istio) and the live
# tier's istiod (toolchain/istiod.py).
istio-toolchain:
	@toolchain/build-istioctl.sh >/dev/null

# Mermaid's own parser, for the tests of `meshkit graph` (Graphviz's `dot` is a Debian package).
graph-toolchain: system-packages
	@toolchain/install-mermaid.sh >/dev/null

## make test: the documentation site (built strictly: a broken link or page fails), then every test tier, the
## real-engine end-to-end tier included
test: bootstrap cluster-toolchain istio-toolchain graph-toolchain
	$(DOCS_BUILD)
	$(VENV)/bin/python -m pytest

# The site is built into site/ (git-ignored). --strict turns MkDocs' warnings (a link to a missing page or anchor,
# a page left out of the navigation) into a failed build. The reference pages are generated while it builds
# (docs/hooks/reference.py), from the models, the error codes in the code and the command line.
DOCS_BUILD = NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir $(CURDIR)/site
## make docs: build the documentation site into site/
docs: bootstrap
	$(DOCS_BUILD)

## make docs-serve: the documentation site on http://127.0.0.1:8000/, rebuilt on every change
docs-serve: bootstrap
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict --dev-addr 127.0.0.1:8000

## make schema: regenerate the JSON Schema of the stack file from the models (a test fails while it differs)
schema: bootstrap
	$(VENV)/bin/python -m meshkit.config.schema --write

## make wheel: meshkit's wheel in dist/, for other Pulumi programs to install (see examples/consumer)
wheel: bootstrap
	$(VENV)/bin/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .

## make bench: every benchmark (about 75 minutes); writes BENCHMARKS.md, bench/mock_cost.png and bench/engine_scale.png
bench: bootstrap
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	$(VENV)/bin/python -m bench.run

lint: bootstrap
	$(VENV)/bin/ruff check meshkit tests toolchain bench docs __main__.py
	$(VENV)/bin/mypy
