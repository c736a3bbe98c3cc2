#!/usr/bin/env bash
# Install the connector into ./.venv when needed, and run it.  With no --config it runs
# the demo: built-in terminal simulator, API on 127.0.0.1:8080, local HiPay stand-in.
# Arguments go to `ecr-connector run` (e.g. deploy/quickstart.sh --config /etc/ecr-connector/config.yml).
#
# It installs only when nothing is installed or pyproject.toml (dependencies, commands)
# changed since the last install: the code itself is installed editable, so a restart
# needs no network.  When an install is needed but fails (offline) and one is already
# there, it says so and runs the installed one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python="${PYTHON:-python3}"
stamp=.venv/.ecr-connector-installed   # the pyproject.toml the last install was made from
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
if [ ! -x .venv/bin/ecr-connector ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  echo "quickstart: installing the connector into .venv" >&2
  if .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .; then
    echo "$wanted" > "$stamp"
  elif [ -x .venv/bin/ecr-connector ]; then
    echo "quickstart: the install failed (no network?); running the connector already installed" >&2
  else
    echo "quickstart: the install failed and nothing is installed yet: connect this machine" \
         "to the network (PyPI) and run deploy/quickstart.sh again" >&2
    exit 1
  fi
fi
# An editable install leaves the code uncompiled, and a process that cannot write beside
# it (a read-only checkout, another user, PYTHONDONTWRITEBYTECODE) would compile every
# module again at each start: about 0.4 s of the agent's start on a small box.  Up-to-date
# files are skipped, so this costs a few stats when nothing changed.
.venv/bin/python -m compileall -q common tp_manager supervisor_agent deploy >/dev/null \
  || echo "quickstart: could not write the bytecode cache; each start compiles the code" >&2
exec .venv/bin/ecr-connector run "$@"
