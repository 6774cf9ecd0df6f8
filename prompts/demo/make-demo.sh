#!/usr/bin/env bash
# Regenerates the demo caller's messages (what `hotline-gateway demo` speaks) with espeak-ng.
# Synthetic Mandarin is hard for Whisper base; replace caller_zh.wav with a real recording
# (any rate, mono or stereo) for a convincing transcript.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v cmn-latn-pinyin -s 150 -w "$tmp/zh.wav" "您好，我家楼下的路灯坏了三天了，晚上很黑，希望尽快修理。"
sox "$tmp/zh.wav" -r 8000 -c 1 -b 16 caller_zh.wav norm -3
espeak-ng -v en-us -s 150 -w "$tmp/en.wav" "Hello, the street light outside my building has been broken for three days. Please fix it soon."
sox "$tmp/en.wav" -r 8000 -c 1 -b 16 caller_en.wav norm -3
