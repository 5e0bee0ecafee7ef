#!/usr/bin/env bash
# Installs the independent S3 clients that the worker's storage tests and `bench stage` compare with:
# Debian's `rclone` and `awscli` (`/usr/bin/aws`). Safe to run again: it installs only what is missing.
# Needs root for installs.
set -euo pipefail

log() { printf 'tools-storage: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
# A pyenv shim named `aws` may be on PATH and not work: only Debian's binary counts.
[[ -x /usr/bin/aws ]] || missing+=(awscli)
[[ -x /usr/bin/rclone ]] || missing+=(rclone)

if ((${#missing[@]} == 0)); then
  exit 0
fi

log "installing ${missing[*]}"
apt_install "${missing[@]}"

/usr/bin/aws --version >&2
rclone_version=$(/usr/bin/rclone version)
log "${rclone_version%%$'\n'*}"
