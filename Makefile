# The two commands a newcomer needs: `make up` and `make test`. Both install first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install up test lint dup bench lock messages clean

install: $(STAMP)

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

up: install
	$(BIN)/cradle up

# Five workers, each test file on one (its module-scoped stacks start once): the suite mostly waits
# on NATS, the databases and the services' own timers, so five overlap well on two cores.
test: install
	$(BIN)/python -m pytest -n 5 --dist loadfile

lint: install
	$(BIN)/ruff check .

# Repeated code (docs/ARCHITECTURE.md, "Repeated code"): pylint's R0801 findings of 6 or more similar
# lines, and the lines they repeat (each finding's shared block, ending with "(duplicate-code)").
dup: install
	$(BIN)/pylint --disable=all --enable=duplicate-code --min-similarity-lines=6 cradle gateway services shared \
	  | awk '/R0801/ { n++; block = 1; next } block && /^==/ { next } \
	    block { lines++; if (/\(duplicate-code\)$$/) block = 0 } \
	    END { printf "%d R0801 findings, %d duplicated lines\n", n, lines }'

# Each benchmark prints its figures next to a baseline measured in the same run (bench/README.md).
bench: install
	$(BIN)/python bench/outbox_relay.py
	$(BIN)/python bench/search.py
	command -v wrk >/dev/null || apt-get install -y -qq --no-install-recommends wrk
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/ban_check.py
	$(BIN)/python bench/ban_check.py --bans 1000  # the same ratios at 10^3 bans: flat from 10^3 to 10^6
	$(BIN)/python bench/ingest.py --event-ids ordered  # UUIDv7s, as docs/API.md asks senders
	$(BIN)/python bench/ingest.py --backend postgres --event-ids ordered
	$(BIN)/python bench/ingest.py  # random uuid4s: what senders who ignore that advice cost SQLite
	$(BIN)/python bench/ingest.py --backend postgres
	$(BIN)/python bench/guidance_figures.py
	$(BIN)/python bench/ban_propagation.py
	$(BIN)/python bench/seed.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/city_day.py

# The texts of replies (shared/i18n.py): extracted from the code into the template, merged into each
# language's catalogue (translate the new or changed entries there; they are compiled at start-up).
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k tr -k N_ --no-location --sort-output --omit-header \
	  -w 110 -o shared/locale/cradle.pot gateway services shared
	$(BIN)/pybabel update -i shared/locale/cradle.pot -d shared/locale -D cradle -l zh_CN \
	  -w 110 --no-fuzzy-matching --ignore-obsolete

# Re-pin after changing pyproject.toml's dependencies: resolves in a scratch venv, writes both locks.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet . && .lock-venv/bin/python -m pip uninstall --quiet -y cradle
	(echo "# Runtime dependencies, pinned (pip freeze on Python 3.11). Regenerate with \`make lock\`."; \
	  .lock-venv/bin/python -m pip freeze | sort -f) > requirements.lock
	.lock-venv/bin/python -m pip install --quiet ".[dev]" && .lock-venv/bin/python -m pip uninstall --quiet -y cradle
	(echo "# Test and lint tools, pinned; installed by \`make install\` on top of requirements.lock."; \
	  echo "-r requirements.lock"; \
	  .lock-venv/bin/python -m pip freeze | sort -f | grep -vxFf requirements.lock) > requirements-dev.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) var .pytest_cache
