#!/usr/bin/env bash
# The test command (README, and .ci/run): installs the system tools some tests drive
# when missing (tests/install_system_tools.sh), creates .venv if needed, installs the
# project with its test extras, then runs the linter, the formatter check, the type
# checker and the whole suite.
# Extra arguments go to pytest (e.g. tests/run.sh -k concert_v2 -x; PYTEST_WORKERS=0
# tests/run.sh -x stops at the first failure, in one process).
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
# The suite runs on PYTEST_WORKERS processes (pytest-xdist; 3 by default, 0 for one
# process): most tests wait on processes and sockets, not on a core.  Its temporary
# folders go under a short base of their own: a test's data_dir holds the connector's unix
# sockets, whose paths have little room (docs/configuration.md, data_dir), and pytest's own
# base (/tmp/pytest-of-USER/pytest-N/popen-gwN/) leaves too little of it.
# Kept when a test failed, to look at; removed otherwise.
basetemp="$(mktemp -d /tmp/ecr-tests.XXXXXX)"
status=0
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-3}" --dist worksteal --basetemp "$basetemp" "$@" \
  || status=$?
if [ "$status" -eq 0 ]; then
  rm -rf "$basetemp"
else
  echo "tests/run.sh: the failed tests' folders are under $basetemp" >&2
fi
exit "$status"
