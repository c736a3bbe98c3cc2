#!/usr/bin/env bash
# The test command (README, and .ci/run): installs the system tools some tests drive
# when missing (tests/install_system_tools.sh), creates .venv if needed, installs the
# project with its test extras, then runs the linter, the formatter check, the type
# checker and the whole suite.
# Extra arguments go to pytest (e.g. tests/run.sh -k concert_v2 -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./tests/install_system_tools.sh  # chromium, promtool: for the status page and alert rules

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy common tp_manager supervisor_agent benchmarks
exec .venv/bin/python -m pytest "$@"
