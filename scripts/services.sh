#!/usr/bin/env bash
# Makes sure the services the tests need are installed and running on this machine:
# PostgreSQL on 127.0.0.1:5432 accepting the `postgres` user without a password, and RabbitMQ on
# 127.0.0.1:5672 with its default guest user (allowed on loopback).
# Safe to run again: it only installs or starts what is missing. Needs root for installs.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

postgres_ready() { pg_isready -h 127.0.0.1 -p 5432 -q; }

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt_install postgresql
  fi
  if ! postgres_ready; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for 60 PostgreSQL postgres_ready
  fi
  if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
    # A fresh Debian install asks for a password on TCP: allow local loopback connections.
    local version hba
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    log "allowing trusted loopback connections in $hba"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    wait_for 30 "PostgreSQL (trust)" psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1'
  fi
}

rabbitmq_ready() { rabbitmqctl -q await_startup --timeout 5; }

ensure_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "installing RabbitMQ"
    apt_install rabbitmq-server
  fi
  if ! rabbitmq_ready; then
    log "starting RabbitMQ"
    rabbitmq-server -detached || true
    wait_for 120 RabbitMQ rabbitmq_ready
  fi
}

ensure_postgres
log "PostgreSQL ready on 127.0.0.1:5432"
ensure_rabbitmq
log "RabbitMQ ready on 127.0.0.1:5672 (guest/guest on loopback)"
