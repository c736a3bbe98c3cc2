#!/usr/bin/env bash
# Install the connector into ./.venv and run it.  With no --config it runs the
# demo: built-in terminal simulator, API on 127.0.0.1:8080, local HiPay stand-in.
# Arguments go to `ecr-connector run` (e.g. deploy/quickstart.sh --config /etc/ecr-connector/config.yml).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/ecr-connector run "$@"
