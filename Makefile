PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow bench lint format clean

$(BIN)/bubblechain: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/bubblechain
	$(BIN)/python -m bubblechain.demo

test: $(BIN)/bubblechain
	$(BIN)/pytest -q

test-slow: $(BIN)/bubblechain
	$(BIN)/pytest -q -m slow

bench: $(BIN)/bubblechain
	$(BIN)/python bench/run_all.py

lint: $(BIN)/bubblechain
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(BIN)/bubblechain
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
