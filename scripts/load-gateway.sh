#!/usr/bin/env bash
# Start a release gateway configured for load tests, in the background, and print its pid.
#
#   scripts/load-gateway.sh [SIP_PORT] [MAX_CALLS]      (defaults 5060, 2000)
#
# The example config with: the call limit raised, 5,000 RTP ports (20000-29999), a fresh data
# directory under /tmp, logs at warn, the flood guard's per-source rate limit lifted (every
# load call comes from 127.0.0.1; at the default 50/s the guard bans the load generator
# within a second), Whisper off (HOTLINE_ASR_ENABLED=true and
# HOTLINE_ASR_MODEL=... turn it on; any other HOTLINE_* variable passes through). Stop it with
# `kill <pid>` (SIGTERM drains).
# Environment: HOTLINE_BIN (default target/release/hotline-gateway; CARGO_TARGET_DIR honoured);
# HOTLINE_RT_PRIO=N runs the gateway under SCHED_RR priority N (`chrt`, needs root or
# CAP_SYS_NICE), as Asterisk's `-p` does: pacing is a scheduling-latency problem first.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${1:-5060}"
max_calls="${2:-2000}"
bin="${HOTLINE_BIN:-${CARGO_TARGET_DIR:-target}/release/hotline-gateway}"
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 2; }
data="$(mktemp -d /tmp/hotline-load.XXXXXX)"
HOTLINE_SIP_LISTEN="127.0.0.1:$port" \
HOTLINE_DATA_DIR="$data" \
HOTLINE_LIMITS_MAX_CALLS="$max_calls" \
HOTLINE_MEDIA_RTP_PORT_MIN=20000 \
HOTLINE_MEDIA_RTP_PORT_MAX=29999 \
HOTLINE_ASR_ENABLED="${HOTLINE_ASR_ENABLED:-false}" \
HOTLINE_SECURITY_RATE_LIMIT="${HOTLINE_SECURITY_RATE_LIMIT:-1000000}" \
HOTLINE_SECURITY_RATE_BURST="${HOTLINE_SECURITY_RATE_BURST:-1000000}" \
HOTLINE_ADMIN_LISTEN="${HOTLINE_ADMIN_LISTEN:-}" \
HOTLINE_LOG="${HOTLINE_LOG:-warn}" \
  nohup ${HOTLINE_RT_PRIO:+chrt -r "$HOTLINE_RT_PRIO"} "$bin" serve --config config/hotline.toml >"$data/gateway.log" 2>&1 &
pid=$!
# wait until it answers on the SIP port
for _ in $(seq 50); do
  if ss -lun 2>/dev/null | grep -q "127.0.0.1:$port "; then break; fi
  sleep 0.1
done
echo "gateway pid $pid, data $data, log $data/gateway.log" >&2
echo "$pid"
