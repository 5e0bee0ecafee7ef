#!/usr/bin/env bash
# Installs the independent S3 clients that the worker's storage tests and `bench stage` compare with:
# Debian's `rclone` and `awscli` (`/usr/bin/aws`). Safe to run again: it installs only what is missing.
# Needs root for installs.
set -euo pipefail

log() { printf 'tools-storage: %s\n' "$*" >&2; }

missing=()
# A pyenv shim named `aws` may be on PATH and not work: only Debian's binary counts.
[[ -x /usr/bin/aws ]] || missing+=(awscli)
[[ -x /usr/bin/rclone ]] || missing+=(rclone)

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

/usr/bin/aws --version >&2
rclone_version=$(/usr/bin/rclone version)
log "${rclone_version%%$'\n'*}"
