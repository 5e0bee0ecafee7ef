#!/usr/bin/env bash
# Installs what the dashboard's browser test drives: Debian's Chromium and ChromeDriver
# (`/usr/bin/chromium`, `/usr/bin/chromedriver`). Safe to run again: it installs only what is
# missing. Needs root for installs.
set -euo pipefail

log() { printf 'tools-browser: %s\n' "$*" >&2; }

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)

if ((${#missing[@]} == 0)); then
  exit 0
fi

log "installing ${missing[*]}"
# Another install may hold dpkg's lock for a while (other scripts of the project): wait for it.
apt_opts=(-o DPkg::Lock::Timeout=600)
if [[ ! -f /var/lib/apt/periodic/swath-updated ]]; then
  apt-get "${apt_opts[@]}" update -qq && mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/swath-updated
fi
DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"
log "$(/usr/bin/chromium --version)"
log "$(/usr/bin/chromedriver --version)"
