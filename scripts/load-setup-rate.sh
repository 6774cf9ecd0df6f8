#!/usr/bin/env bash
# Call set-up rate (BENCHMARKS.md §2): a fresh release gateway, short calls placed at RATE per
# second, the report, the gateway's SIP socket drops, then the gateway stopped.
#
#   scripts/load-setup-rate.sh RATE CALLS [load|sipp] [PORT]     (defaults 300 3000 load 5076)
#
# `load`: `hotline-gateway load` (INVITE, 200, ACK, the greeting for 2 s, BYE; no digits).
# `sipp`: scripts/load-sipp.sh with the same rate, count and 2 s hold (an independent UAC).
# Prints the load average before and after; the JSON report is kept (path printed).
# Build first: cargo build --release (CARGO_TARGET_DIR honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-300}"
calls="${2:-3000}"
tool="${3:-load}"
port="${4:-5076}"
bin="${HOTLINE_BIN:-${CARGO_TARGET_DIR:-target}/release/hotline-gateway}"
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 2; }
# Enough concurrency for RATE calls/s lasting ~2 s plus set-up, but below the RTP ranges.
conc=$(( rate * 4 < 2000 ? rate * 4 : 2000 ))
[ "$conc" -gt "$calls" ] && conc="$calls"

sip_drops() { # kernel drops on the gateway's SIP socket (last column of /proc/net/udp)
  local hex; hex=$(printf '%04X' "$port")
  awk -v p=":$hex" '$2 ~ p"$" {print $NF}' /proc/net/udp | head -1
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
pid=$(scripts/load-gateway.sh "$port" 4000)
trap 'kill -TERM "$pid" 2>/dev/null || true' EXIT
sleep 1
out="$(mktemp /tmp/hotline-setup.XXXXXX.json)"
status=0
if [ "$tool" = sipp ]; then
  scripts/load-sipp.sh "127.0.0.1:$port" "$rate" "$calls" "$conc" 2000 || status=$?
else
  "$bin" load --target "sip:8890@127.0.0.1:$port" --calls "$calls" --concurrency "$conc" \
    --rate "$rate" --dtmf "" --end-digit "" --max-call-duration 2 --max-time 600 \
    --pid "$pid" --json "$out" || status=$?
  echo "report: $out" >&2
fi
echo "gateway SIP socket drops: $(sip_drops)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
kill -TERM "$pid" 2>/dev/null || true
# SIGTERM drains (calls are short); wait so the next run starts on a quiet gateway.
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
trap - EXIT
exit "$status"
