#!/usr/bin/env bash
# The reference fleet on one box: PostgreSQL (the shared ticket store), N hotline-gateway
# instances on loopback, and Kamailio dispatching calls to them (deploy/kamailio/kamailio.cfg).
# Everything lives under $FLEET_DIR (default /tmp/hotline-fleet) and stops on Ctrl-C.
#
#   deploy/fleet/run-local.sh [N]            # N instances, default 2
#   INTAKE_URL=http://127.0.0.1:8000/tickets deploy/fleet/run-local.sh 3
#
# Callers dial sip:8890@127.0.0.1:5060 (Kamailio). Instance i listens on 127.0.0.1:507i,
# RTP 2i000-2i999, admin 127.0.0.1:909i, data in $FLEET_DIR/gw-i. As root the database runs as
# `nobody` (PostgreSQL refuses root). Needs: postgresql, kamailio, a built hotline-gateway.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${1:-2}
FLEET_DIR=$(realpath -m "${FLEET_DIR:-/tmp/hotline-fleet}")
PG_PORT=${PG_PORT:-55432}
BIN=${HOTLINE_BIN:-target/release/hotline-gateway}
[ -x "$BIN" ] || BIN=target/debug/hotline-gateway
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
KAMAILIO=$(command -v kamailio || echo /usr/sbin/kamailio)

mkdir -p "$FLEET_DIR"
as_db() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_db "$PG_BIN/pg_ctl" -D "$FLEET_DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

# 1. PostgreSQL: a UTF-8 cluster with the C.UTF-8 locale (trigram search of Chinese needs it).
if [ ! -d "$FLEET_DIR/pg" ]; then
  [ "$(id -u)" = 0 ] && chown nobody "$FLEET_DIR"
  as_db "$PG_BIN/initdb" -D "$FLEET_DIR/pg" --locale=C.UTF-8 -E UTF8 -U hotline -A trust >/dev/null
fi
as_db "$PG_BIN/pg_ctl" -D "$FLEET_DIR/pg" -l "$FLEET_DIR/pg.log" -w \
  -o "-p $PG_PORT -k $FLEET_DIR -c listen_addresses=127.0.0.1" start >/dev/null
DB_URL="postgres://hotline@127.0.0.1:$PG_PORT/postgres"
echo "fleet: PostgreSQL at $DB_URL"

# 2. The gateways: same config, same database, each its own ports, instance id and data dir.
: > "$FLEET_DIR/dispatcher.list"
for i in $(seq 1 "$N"); do
  mkdir -p "$FLEET_DIR/gw-$i"
  HOTLINE_SIP_LISTEN="127.0.0.1:507$i" HOTLINE_SIP_INSTANCE_ID="gw-$i" \
  HOTLINE_MEDIA_RTP_PORT_MIN="2${i}000" HOTLINE_MEDIA_RTP_PORT_MAX="2${i}999" \
  HOTLINE_ADMIN_LISTEN="127.0.0.1:909$i" HOTLINE_CONSOLE_LISTEN="" \
  HOTLINE_TICKETS_INSTANCE_NUMBER="$i" \
  HOTLINE_TICKETS_STORE=postgres HOTLINE_TICKETS_URL="$DB_URL" \
  HOTLINE_INTAKE_URL="${INTAKE_URL:-}" \
  HOTLINE_DATA_DIR="$FLEET_DIR/gw-$i" \
    "$BIN" serve --config config/hotline.toml 2>"$FLEET_DIR/gw-$i.log" &
  pids+=($!)
  echo "1 sip:127.0.0.1:507$i 0 0 duid=gw-$i" >> "$FLEET_DIR/dispatcher.list"
  echo "fleet: gw-$i on 127.0.0.1:507$i (metrics http://127.0.0.1:909$i/metrics)"
done

# 3. Kamailio in front, with the recipe's own config.
mkdir -p "$FLEET_DIR/kamailio"
"$KAMAILIO" -DD -E -Y "$FLEET_DIR/kamailio" -P "$FLEET_DIR/kamailio/kamailio.pid" \
  -f deploy/kamailio/kamailio.cfg -A 'LISTEN=udp:127.0.0.1:5060' \
  -A "DISPATCHER_LIST=\"$FLEET_DIR/dispatcher.list\"" \
  -A "CTL_SOCKET=\"unix:$FLEET_DIR/kamailio/ctl\"" 2>"$FLEET_DIR/kamailio.log" &
pids+=($!)
echo "fleet: Kamailio on udp:127.0.0.1:5060; call sip:8890@127.0.0.1:5060. Ctrl-C stops all."
echo "fleet: tickets: psql -h 127.0.0.1 -p $PG_PORT -U hotline postgres -c 'SELECT id, gateway_instance, state, duplicate_of FROM hotline_tickets'"
wait
