#!/usr/bin/env bash
# The Python virtualenv .venv, with Resilin installed editable and its test tools
# (pyproject.toml's `test` extras).  Rebuilt only when pyproject.toml changes, so on a machine
# where it is in place this returns at once.  Part of scripts/setup.sh; `make check` needs only this.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  printf '\033[1m== %s\033[0m\n' "installing Python packages into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
