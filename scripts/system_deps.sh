#!/usr/bin/env bash
# Install the Debian packages named on the command line that are not installed yet.
# `make test` calls it with what the tests need (browsers, nginx, wrk, promtool); it is
# quick when everything is there. Needs root, as on CI and the developers' machines; without
# root it only says what is missing (tests that need it then skip loudly, or fail under CI).
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system_deps: missing Debian packages: ${missing[*]} (not root or no apt-get; tests that need them will skip or fail)" >&2
  exit 0
fi
echo "system_deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
