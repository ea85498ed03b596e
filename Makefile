# The two commands of README.md: `make demo` and `make test`.  Both set everything up first.
.PHONY: setup demo test bench lint

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/resilin demo

# The local cloud's tests run instances from the real node image that setup has built.
test: setup
	.venv/bin/ruff check .
	RESILIN_TEST_NODE_IMAGE=localhost/resilin-node:latest .venv/bin/pytest -v -rs

bench: setup
	.venv/bin/python bench/deploy.py

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
