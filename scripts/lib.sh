# Shared by the set-up scripts (sourced, not run). The caller defines `log`.

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "$what did not come up in time"
      return 1
    fi
    sleep 1
  done
}

apt_install() { # apt_install PACKAGE... (the package lists are refreshed once per machine)
  # Another install may hold dpkg's lock for a while (other scripts of the project): wait for it.
  local apt_opts=(-o DPkg::Lock::Timeout=600)
  if [[ ! -f /var/lib/apt/periodic/swath-updated ]]; then
    apt-get "${apt_opts[@]}" update -qq && mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/swath-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq "$@"
}
