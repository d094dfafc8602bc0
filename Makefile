# Every target mirrors what CI runs; `make help` lists them.
SHELL := /bin/bash
VENV := .venv
# The infrastructure linters live in their own venv: checkov pins boto3 and packaging to versions
# that conflict with moto/boto3/pytest in .venv (requirements-lint.txt).
LINT_VENV := .venv-lint
# The SAM CLI: its pins conflict with the Genesys SDK's in .venv (requirements-sam.txt).
SAM_VENV := .venv-sam
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

.PHONY: help setup chromium test test-rust test-contract lint lint-infra fmt demo package bench build flake-check fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(LINT_VENV)/.installed $(SAM_VENV)/.installed chromium ## create .venv (moto, cargo-lambda, Genesys, Microsoft Graph and Google SDKs, test tools), .venv-lint (cfn-lint, checkov) and .venv-sam (SAM CLI); install Debian's chromium

# The day-page test renders `autopilot day` in headless Chromium (Debian's package, /usr/bin/chromium).
# Without apt (not Debian) it only warns: the demo needs no browser, and the test says what is missing.
chromium:
	@command -v /usr/bin/chromium >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "warning: no apt-get; install Chromium at /usr/bin/chromium for the day-page test" >&2; exit 0; fi; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	  else echo "install Debian's chromium (apt-get install chromium) as root: the day-page test needs it" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -qq chromium >/dev/null || { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }; }

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(LINT_VENV)/.installed: requirements-lint.txt
	python3 -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-lint.txt
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

test: setup ## Rust unit + integration tests, the official-SDK contract tests, the stack deployed from infra/template.yaml (whole flow, template mutations, roles), least privilege
	cargo test --workspace --locked
	$(LOCAL_BUILD)
	cargo build --locked -p peers
	rm -rf $${CARGO_TARGET_DIR:-target}/privilege-log
	$(VENV)/bin/pytest -q tests/contract tests/smoke tests/stack tests/layering
	$(VENV)/bin/python scripts/privilege_report.py --check >/dev/null

# The functions infra/template.yaml declares (Metadata.BuildProperties.Binary).
FUNCTIONS := transition outbox-relay webhook-dispatch schedule-check calendar-notify calendar-sync calendar-upkeep lookahead

# The README's local walk builds exactly these; the tests and the demo use them the same way. One
# package per build, as `cargo lambda watch -p NAME` builds each function, so it finds them fresh.
define LOCAL_BUILD
cargo build --locked -p genesys-sim -p graph-sim -p google-sim
	cargo build --locked -p presence-autopilot --features cli --bin autopilot
	@for f in $(FUNCTIONS); do cargo build --locked -p $$f || exit 1; done
endef

test-rust: setup ## only the Rust tests
	cargo test --workspace --locked

test-contract: setup ## only the official-SDK contract tests (Genesys Cloud, Microsoft Graph, Google Calendar)
	cargo build --locked -p genesys-sim -p graph-sim -p google-sim -p peers
	$(VENV)/bin/pytest -q tests/contract

fuzz: ## the parser property tests with many more cases (PROPTEST_CASES=50000)
	PROPTEST_CASES=$${PROPTEST_CASES:-50000} cargo test --locked -p presence-autopilot --test parser_properties

flake-check: setup ## every concurrency test N times (N=20): `passed X/N` per test
	$(VENV)/bin/python scripts/flake_check.py --runs $${N:-20}

lint: setup lint-infra ## cfn-lint + checkov on infra/, rustfmt check, clippy with warnings as errors, the layering rules
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	python3 scripts/code_shape.py --check

lint-infra: $(LINT_VENV)/.installed $(SAM_VENV)/.installed ## sam validate --lint, cfn-lint and checkov on infra/template.yaml (offline)
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template-file infra/template.yaml --region us-east-1
	$(LINT_VENV)/bin/cfn-lint infra/template.yaml
	$(LINT_VENV)/bin/checkov -f infra/template.yaml --framework cloudformation --quiet --compact --skip-download

fmt: ## format the code
	cargo fmt --all

demo: setup ## the scripted day on the stack deployed from infra/template.yaml: stand-in, simulators, webhook receiver, each function under its role (docs/demo.md)
	$(LOCAL_BUILD)
	$(VENV)/bin/python scripts/demo.py

package: setup ## docs/deploy.md's `sam build` (arm64, cargo-lambda): every function's zip, with its size and the build's time
	$(VENV)/bin/python scripts/package.py

bench: setup ## cold start, first invoke, CPU and peak RSS of the release transition beside a minimal Lambda and the SDK yardstick; the all-hands (both edges, the floor's mix; on the stand-in, timed); token requests per burst; the pure stages; the connector; the stand-in; the arm64 zip (docs/benchmarks.md)
	cargo bench --locked -p presence-autopilot --bench transition
	$(LOCAL_BUILD)
	cargo build --locked --release -p transition -p yardstick -p sdk-yardstick
	$(VENV)/bin/python scripts/bench_lambda.py
	@echo "| agents, step | rate window | Genesys calls | 429s | token requests | deliveries | time |"; echo "|---|---|---|---|---|---|---|"
	@set -o pipefail; cargo test --locked -q -p integration-tests --test it -- --include-ignored --nocapture --test-threads=1 burst::a_thousand_agents_meet burst::ten_thousand burst::a_burst 2>&1 | grep -o '| [0-9].*\|^token requests.*'
	@echo "| agents, step (state on the stand-in) | Genesys calls | 429s | DynamoDB calls per agent decided | time (real) |"; echo "|---|---|---|---|---|"
	@set -o pipefail; cargo test --locked -q -p integration-tests --test it -- --include-ignored --nocapture burst::a_thousand_agents_on_the_stand_in 2>&1 | grep -o '| [0-9].*'
	@echo "| forecast | Genesys calls | DynamoDB calls | time (real, stand-in) |"; echo "|---|---|---|---|"
	@set -o pipefail; cargo test --locked -q -p integration-tests --test it -- --include-ignored --nocapture operator::forecast_of_a_thousand_agent_team_over_a_week 2>&1 | grep -o '| forecast.*'
	cargo build --locked -p integration-tests --example connector_bench
	$(VENV)/bin/python scripts/bench_connector.py
	$(VENV)/bin/python scripts/bench_standin.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip -p transition
	@stat -c '%s' $${CARGO_TARGET_DIR:-target}/lambda/transition/bootstrap.zip | awk '{printf "transition arm64 zip (what SAM deploys): %d B\n", $$1}'
