#!/usr/bin/env bash
# Installs what the dashboard's browser test drives: Debian's Chromium and ChromeDriver
# (`/usr/bin/chromium`, `/usr/bin/chromedriver`). Safe to run again: it installs only what is
# missing. Needs root for installs.
set -euo pipefail

log() { printf 'tools-browser: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)

if ((${#missing[@]} == 0)); then
  exit 0
fi

log "installing ${missing[*]}"
apt_install "${missing[@]}"
log "$(/usr/bin/chromium --version)"
log "$(/usr/bin/chromedriver --version)"
