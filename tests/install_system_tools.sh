#!/usr/bin/env bash
# The system programs some tests drive: Chromium (the status page in a real headless
# browser) and promtool (the alert rules in deploy/monitoring/), both from Debian's
# packages. Installed when missing, if this runs as root with apt-get (CI does, on a
# fresh machine); otherwise those tests skip and say why. Never fails the run by itself.
set -uo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "tests: ${need[*]} missing and not installable here (needs root and apt-get): their tests skip" >&2
  exit 0
fi
echo "tests: installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null; }; then
  echo "tests: could not install ${need[*]}: their tests skip" >&2
fi
exit 0
