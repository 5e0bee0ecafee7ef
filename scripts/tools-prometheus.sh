#!/usr/bin/env bash
# Installs what the alerting rules' tests run: Debian's `prometheus` package, for its
# `/usr/bin/promtool` (`promtool check rules`, `promtool test rules` on `deploy/prometheus/`). Only
# promtool is used: the Prometheus server the package may start is stopped and disabled. Safe to
# run again: it installs only what is missing. Needs root for installs.
set -euo pipefail

log() { printf 'tools-prometheus: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -x /usr/bin/promtool ]]; then
  exit 0
fi

log "installing prometheus (for promtool)"
# No recommends: the exporters and the web console libraries are not needed.
apt_install --no-install-recommends prometheus

# The package's server is not wanted: stop it if its post-install script started one (under systemd,
# or through its init script), and keep it from starting at boot. In a container without an init
# system the start is refused and nothing runs.
if [[ -d /run/systemd/system ]]; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif command -v service >/dev/null 2>&1; then
  service prometheus stop >/dev/null 2>&1 || true
fi
log "$(/usr/bin/promtool --version 2>&1 | head -n 1)"
