#!/usr/bin/env bash
# Cron watchdog, as the seeds install it:   */2 * * * * /path/to/deploy/always-up.sh
#
# Starts the connector only if it is not already running.  Idempotent: the
# supervisord pidfile says whether it runs (checked with kill -0 and the
# process's command line, so a recycled pid is not mistaken for it), and flock
# keeps two overlapping cron runs from both starting it.
#
# Settings (environment, or edit the defaults):
#   ECR_CONNECTOR   the ecr-connector command   (default: the one beside this script's venv, else PATH)
#   ECR_CONFIG      path to config.yml / config.txt (default: none = demo)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
connector="${ECR_CONNECTOR:-}"
if [ -z "$connector" ]; then
  if [ -x "$here/../.venv/bin/ecr-connector" ]; then
    connector="$here/../.venv/bin/ecr-connector"
  else
    connector="$(command -v ecr-connector || true)"
  fi
fi
if [ -z "$connector" ]; then
  echo "always-up: ecr-connector not found; set ECR_CONNECTOR" >&2
  exit 2
fi

args=()
[ -n "${ECR_CONFIG:-}" ] && args+=(--config "$ECR_CONFIG")

# Ask the connector where its pidfile is, so this script and `run` agree.
pidfile="$("$connector" run "${args[@]}" --print-pidfile)"
mkdir -p "$(dirname "$pidfile")"
lock="$(dirname "$pidfile")/always-up.lock"

exec 9>"$lock"
if ! flock -n 9; then
  echo "always-up: another always-up run holds $lock; nothing to do"
  exit 0
fi

if [ -s "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null && grep -q supervisord "/proc/$pid/cmdline" 2>/dev/null; then
    echo "always-up: connector already running (supervisord pid $pid)"
    exit 0
  fi
fi

log_dir="$(dirname "$(dirname "$pidfile")")/logs"
mkdir -p "$log_dir"
echo "always-up: starting the connector"
# setsid: the connector must outlive cron's session; the lock fd is not inherited.
setsid "$connector" run "${args[@]}" >>"$log_dir/always-up.log" 2>&1 9>&- < /dev/null &
# wait (bounded) until supervisord has written its pidfile, so the next run sees it
for _ in $(seq 1 50); do
  [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && { echo "always-up: started (pid $(cat "$pidfile"))"; exit 0; }
  sleep 0.2
done
echo "always-up: connector did not write $pidfile within 10 s; see $log_dir" >&2
exit 1
