#!/usr/bin/env bash
# Outbound RTP pacing under many concurrent calls (BENCHMARKS.md §1), with Whisper idle or
# busy on both cores.
#
#   scripts/load-pacing.sh CALLS [idle|asr] [RATE] [PORT]      (defaults 1000 idle 50 5077)
#
# Each call: the digit 1 after 1 s (cuts the greeting), "speak after the tone", the demo
# caller's 8.6 s message, `#`, thanks, goodbye, the gateway's BYE (~25 s); all CALLS at once
# (concurrency = CALLS), started at RATE per second.
#
# `asr`: the gateway transcribes with Whisper (HOTLINE_ASR_MODEL, default
# models/ggml-base.bin; one worker per core). A first wave of WARMUP calls (default 40) leaves
# messages, so both workers have a backlog of transcriptions before the measured wave starts
# and keep working through it; the measured wave's messages queue behind them. The report's
# gateway CPU shows it (close to 200 % of a core = both cores).
# Build first: cargo build --release (CARGO_TARGET_DIR honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-1000}"
mode="${2:-idle}"
rate="${3:-50}"
port="${4:-5077}"
bin="${HOTLINE_BIN:-${CARGO_TARGET_DIR:-target}/release/hotline-gateway}"
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin missing)" >&2; exit 2; }
msg=prompts/demo/caller_zh.wav
call_args=(--play "$msg" --dtmf 1 --dtmf-delay 1 --speak-delay 7.6 --end-digit '#'
           --max-call-duration 90)

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ "$mode" = asr ]; then
  model="${HOTLINE_ASR_MODEL:-models/ggml-base.bin}"
  [ -f "$model" ] || { echo "no Whisper model at $model (models/fetch.sh base)" >&2; exit 2; }
  pid=$(HOTLINE_ASR_ENABLED=true HOTLINE_ASR_REQUIRED=true HOTLINE_ASR_MODEL="$model" \
        HOTLINE_ASR_QUEUE_DEPTH=5000 HOTLINE_ASR_TIME_BUDGET_SECS=600 \
        scripts/load-gateway.sh "$port" 4000)
else
  pid=$(scripts/load-gateway.sh "$port" 4000)
fi
trap 'kill -TERM "$pid" 2>/dev/null || true' EXIT
sleep 1
if [ "$mode" = asr ]; then
  warm="${WARMUP:-40}"
  echo "warm-up: $warm calls leaving messages for Whisper" >&2
  "$bin" load --target "sip:8890@127.0.0.1:$port" --calls "$warm" --concurrency "$warm" \
    --rate 20 "${call_args[@]}" --rtp-ports 30000-30999 >/dev/null || true
fi
out="$(mktemp /tmp/hotline-pacing.XXXXXX.json)"
status=0
"$bin" load --target "sip:8890@127.0.0.1:$port" --calls "$calls" --concurrency "$calls" \
  --rate "$rate" "${call_args[@]}" --max-time 900 --pid "$pid" --json "$out" || status=$?
echo "report: $out" >&2
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
kill -TERM "$pid" 2>/dev/null || true
# Calls are over; SIGTERM drains (and with ASR waits for the transcription backlog; the
# next run should wait for it too).
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
kill -KILL "$pid" 2>/dev/null || true
trap - EXIT
exit "$status"
