# The two commands of the README, and a few for developers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck check clean

$(BIN)/doorstep: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/doorstep  ## run the server with a seeded demo city on embedded stores
	$(BIN)/doorstep demo

test: $(BIN)/doorstep  ## run the test suite (embedded stores unless REDIS_URL/DATABASE_URL are set)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(BIN)/doorstep
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/doorstep
	$(BIN)/mypy .

check: lint typecheck test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
