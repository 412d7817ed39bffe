#!/usr/bin/env bash
# `make services`: PostgreSQL + RabbitMQ from Debian, listening on loopback only, for an AiiDA
# profile at scale (core.psql_dos storage + core.rabbitmq broker). Idempotent: installs what is
# missing, configures once, starts what is not running. Works with or without systemd (containers).
#
# Creates the PostgreSQL role ${AGI_PG_USER:-agi} (password ${AGI_PG_PASSWORD:-agi}, CREATEDB) that
# agi's tests and `verdi presto --use-postgres --postgres-username agi ...` use. Loopback only: do not
# expose these defaults on a shared network.
set -euo pipefail
PG_USER=${AGI_PG_USER:-agi}
PG_PASSWORD=${AGI_PG_PASSWORD:-agi}
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "services: need root or sudo" >&2; exit 1; }
  SUDO=sudo
fi
as_postgres() { if command -v runuser >/dev/null && [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else $SUDO -u postgres "$@"; fi; }

missing=()
for p in postgresql rabbitmq-server; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "services: installing ${missing[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d: do not let the package scripts start services in containers without an init system
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- RabbitMQ: loopback, and a consumer timeout longer than any AiiDA process can wait
# (RabbitMQ >= 3.8.15 closes a channel whose message is unacknowledged for 30 min by default,
# which kills long-running AiiDA processes; see the AiiDA docs "RabbitMQ consumer timeout").
conf=/etc/rabbitmq/rabbitmq.conf
if ! grep -q "agi-data" "$conf" 2>/dev/null; then
  $SUDO mkdir -p /etc/rabbitmq
  printf '%s\n' "# agi-data (scripts/services.sh)" "listeners.tcp.default = 127.0.0.1:5672" \
    "consumer_timeout = 31622400000" "management.tcp.ip = 127.0.0.1" | $SUDO tee -a "$conf" >/dev/null
fi
if ! $SUDO rabbitmqctl -q status >/dev/null 2>&1; then
  if pidof systemd >/dev/null 2>&1; then
    $SUDO systemctl restart rabbitmq-server
  else
    (cd /tmp && $SUDO rabbitmq-server -detached >/dev/null 2>&1) || true
  fi
  for _ in $(seq 120); do $SUDO rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 1; done
  $SUDO rabbitmqctl -q --timeout 60 await_startup
fi

# --- PostgreSQL: Debian's default cluster listens on localhost only
if command -v pg_lsclusters >/dev/null; then
  read -r ver cluster status <<<"$(pg_lsclusters -h | awk 'NR==1 {print $1, $2, $4}')"
  if [ -z "${ver:-}" ]; then
    ver=$(ls /usr/lib/postgresql | sort -n | tail -1); cluster=main
    $SUDO pg_createcluster "$ver" "$cluster" >/dev/null
    status=down
  fi
  if [ "$status" != online ]; then
    if pidof systemd >/dev/null 2>&1; then $SUDO systemctl start "postgresql@${ver}-${cluster}"; else $SUDO pg_ctlcluster "$ver" "$cluster" start; fi
  fi
fi
for _ in $(seq 60); do as_postgres psql -qAtc "select 1" >/dev/null 2>&1 && break; sleep 1; done
if [ "$(as_postgres psql -qAtc "select 1 from pg_roles where rolname='${PG_USER}'")" != 1 ]; then
  as_postgres psql -qc "create role ${PG_USER} with login createdb password '${PG_PASSWORD}'"
fi
echo "services: PostgreSQL on 127.0.0.1:5432 (role ${PG_USER}), RabbitMQ on 127.0.0.1:5672 (consumer_timeout 1 year)"
