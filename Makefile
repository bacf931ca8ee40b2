# The entry point for people: `make demo` runs the split detector on the bundled defaults,
# `make test` runs the tests. Both set up the workspace first (tools/setup.sh; quick when nothing changed).
SHELL := /bin/bash
ENV := source tools/env.sh

.PHONY: setup demo test lint

setup:
	bash tools/setup.sh

demo: setup
	$(ENV) && python -m sc2_split.demo

test: setup
	$(ENV) && pytest sc2_split/test -q -p no:cacheprovider

lint: setup
	$(ENV) && ruff check . && ruff format --check .
