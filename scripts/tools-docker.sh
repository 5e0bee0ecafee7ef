#!/usr/bin/env bash
# Makes sure the Docker tests can run on this machine: a Docker engine answering on its local socket
# (or on DOCKER_HOST) and the stand-in scientific image swath-standin:latest.
# Safe to run again: it only installs, starts or builds what is missing or out of date. Needs root for
# installs and to start the engine. Nothing is ever pulled from a registry.
#
# The engine it starts runs with --iptables=false --bridge=none: containers get no network but
# loopback, whatever they ask for. The worker's `network: true` asks for the engine's default network
# (the `bridge` network of a normal engine); on this engine that network does not exist and a
# container still sees loopback only.
#
# The image is imported from a root filesystem holding Debian's busybox-static and the files of
# worker/standin/; it is labelled swath.standin.hash with a hash of those sources and rebuilt when
# they change.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${SWATH_STANDIN_IMAGE:-swath-standin:latest}
DOCKERD_LOG=${SWATH_DOCKERD_LOG:-/var/log/swath-dockerd.log}
# Bump when the way the image is assembled changes.
RECIPE=1

log() { printf 'tools-docker: %s\n' "$*" >&2; }

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

engine_answers() { docker version --format '{{.Server.Version}}'; }

static_busybox() {
  [[ -x /bin/busybox ]] || return 1
  local out
  out=$(LC_ALL=C ldd /bin/busybox 2>&1 || true)
  [[ "$out" == *"not a dynamic executable"* ]]
}

ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  # The image has no libraries: only a statically linked busybox runs in it.
  static_busybox || missing+=(busybox-static)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

ensure_engine() {
  if engine_answers >/dev/null 2>&1; then
    return
  fi
  if [[ -n "${DOCKER_HOST:-}" ]]; then
    log "DOCKER_HOST=$DOCKER_HOST does not answer; unset it to use a local engine"
    return 1
  fi
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is running but does not answer yet; waiting"
  else
    log "starting dockerd (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    nohup dockerd --iptables=false --bridge=none >>"$DOCKERD_LOG" 2>&1 </dev/null &
    disown
  fi
  if ! wait_for 60 "the Docker engine" engine_answers; then
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    return 1
  fi
}

sources_hash() {
  {
    echo "recipe $RECIPE"
    /bin/busybox 2>&1 | head -n 1
    find worker/standin -type f | LC_ALL=C sort | while IFS= read -r f; do
      printf '%s %s\n' "$f" "$(stat -c %a "$f")"
      cat "$f"
    done
  } | sha256sum | cut -c1-16
}

ensure_image() {
  local hash current root previous
  hash=$(sources_hash)
  current=$(docker image inspect "$IMAGE" --format '{{index .Config.Labels "swath.standin.hash"}}' 2>/dev/null || true)
  previous=$(docker image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)
  if [[ "$current" == "$hash" ]]; then
    log "$IMAGE is up to date ($hash)"
    return
  fi
  log "building $IMAGE ($hash)"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  mkdir -p "$root/bin" "$root/standin" "$root/etc" "$root/work" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  /bin/busybox --list | while IFS= read -r applet; do
    [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  cp -r worker/standin/. "$root/standin/"
  chmod 0755 "$root/standin/run.sh"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
    docker import \
      --change 'ENV PATH=/bin' \
      --change 'WORKDIR /work' \
      --change 'CMD ["/bin/sh", "/standin/run.sh"]' \
      --change "LABEL swath.standin.hash=$hash" \
      - "$IMAGE" >/dev/null
  log "built $IMAGE: $(docker image inspect "$IMAGE" --format '{{.Id}}')"
  if [[ -n "$previous" ]]; then
    # The previous build, now untagged; kept if a container still uses it.
    docker image rm "$previous" >/dev/null 2>&1 || true
  fi
}

ensure_packages
ensure_engine
ensure_image
