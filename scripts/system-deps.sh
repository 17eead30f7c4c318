#!/usr/bin/env bash
# System packages the test suite uses: PostgreSQL 15 server binaries (ledger tests) and
# Chromium (dashboard screenshots). Installed with apt where it is available and we are root;
# otherwise the tests that need them skip with a reason. Safe to run again.
set -uo pipefail

have_initdb() {
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
have_chromium() { command -v chromium >/dev/null 2>&1; }

missing=()
have_initdb || missing+=(postgresql-15)
have_chromium || missing+=(chromium chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: apt-get not available; tests needing ${missing[*]} will skip" >&2
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "system-deps: not root and no sudo; tests needing ${missing[*]} will skip" >&2
    exit 0
  fi
fi
echo "==> installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null || true
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "system-deps: apt-get install ${missing[*]} failed; tests needing them will skip" >&2
fi
exit 0
