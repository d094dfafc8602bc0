# Every target mirrors what CI runs; `make help` lists them.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

.PHONY: help setup test test-rust test-contract lint fmt demo bench build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv with moto, cargo-lambda, the Genesys SDK and test tools

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

test: setup ## Rust unit + integration tests (simulator, moto), then the official-SDK contract test
	cargo test --workspace --locked
	cargo build --locked -p genesys-sim -p peers
	$(VENV)/bin/pytest -q tests/contract

test-rust: setup ## only the Rust tests
	cargo test --workspace --locked

test-contract: setup ## only the Genesys Python SDK contract test
	cargo build --locked -p genesys-sim -p peers
	$(VENV)/bin/pytest -q tests/contract

lint: setup ## rustfmt check and clippy with warnings as errors
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt: ## format the code
	cargo fmt --all

demo: setup ## start the Genesys simulator and play the presence walkthrough
	cargo build --locked -p genesys-sim -p integration-tests --examples
	./scripts/demo.sh
