# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The development defaults (secrets, no HTTPS) apply only with DEBUG on; production sets none
# of this and must provide SECRET_KEY and KEY_ENCRYPTION_KEY itself.
export DEBUG ?= 1

.PHONY: run test lint format install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Set up and run the whole system with the demo community on embedded defaults.
run: $(BIN)/.installed
	$(BIN)/python manage.py runsystem --demo

## Run the whole test suite (unit, integration with real workers, browser).
test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var
