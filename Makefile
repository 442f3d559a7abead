# The two commands of the README, and a few for developers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two test processes (pytest-xdist), one file at a time each: every process has its own
# database, Redis key prefix and servers (tests/conftest.py), so they do not meet.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test browser lint typecheck check clean

$(BIN)/doorstep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/doorstep  ## run the server with a seeded demo city on embedded stores
	$(BIN)/doorstep demo

test: $(BIN)/doorstep browser  ## run the test suite (embedded stores unless REDIS_URL/DATABASE_URL are set)
	$(BIN)/pytest $(PYTEST_ARGS)

# The browser tests (tests/test_pages.py) drive Debian's Chromium through Playwright
# (Playwright's own browser download cannot work on closed networks). Install it, and a
# CJK font for readable screenshots, when missing and apt can; otherwise those tests skip
# and say why.
browser:
	@missing=""; \
	[ -n "$$DOORSTEP_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk\|noto serif cjk" || missing="$$missing fonts-wqy-microhei"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $$missing with apt for the browser tests"; \
	  ( apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing ) >/dev/null 2>&1 \
	  || echo "apt could not install $$missing: browser tests skip if Chromium is missing"; \
	else echo "no $$missing and no root apt-get to install it: browser tests skip if Chromium is missing"; fi

lint: $(BIN)/doorstep
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/doorstep
	$(BIN)/mypy .

check: lint typecheck test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
