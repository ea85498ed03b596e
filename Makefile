# The two commands of README.md: `make demo` and `make test`.  Both set everything up first.
# `make check` is the fast one: lint, types and the unit tier, with nothing but the virtualenv.
.PHONY: setup .venv check demo test test-extended bench lint

setup:
	@scripts/setup.sh

# Only the virtualenv (part of setup): all that `make check` needs.
.venv:
	@scripts/setup-venv.sh

# Under 3 minutes; CI runs it before `make test` so that it fails fast.  mypy checks the files
# that [tool.mypy] in pyproject.toml names.
check: .venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/pytest -q tests/unit

demo: setup
	.venv/bin/resilin demo

# Every tier (tests/unit, service, cloud and cluster).  The local cloud's tests run instances
# from the real node image that setup has built; the storage's 5 GiB object is checked too.
# MinIO (built once from the Go module proxy) is the external S3 service of clusters on any S3.
test: setup
	@scripts/setup-minio.sh >/dev/null
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	RESILIN_TEST_NODE_IMAGE=localhost/resilin-node:latest RESILIN_BIG_TESTS=1 .venv/bin/pytest -v -rs

# Only the longer cluster suites (several clusters each): EMR semantics with the AWS CLI and
# mrjob, Hadoop configurations, step types, resizing and failed nodes.
test-extended: setup
	@scripts/setup-minio.sh >/dev/null
	RESILIN_TEST_NODE_IMAGE=localhost/resilin-node:latest .venv/bin/pytest -v -rs -m extended

bench: setup
	.venv/bin/python bench/deploy.py

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
