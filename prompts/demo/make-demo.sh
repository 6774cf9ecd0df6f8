#!/usr/bin/env bash
# Regenerates the demo caller's messages (what `hotline-gateway demo` speaks) from
# caller_<lang>.txt with Kokoro (prompts/tts/say), in voices other than the prompts' so the demo
# is a different person from the IVR. caller_zh is a complaint whose keywords (马路, 路灯,
# 路面) classify it as 路灯道路 whatever the caller pressed; tests/prompts_intelligibility.rs
# checks that it survives the phone line and Whisper (CER ≤ 0.15).
set -euo pipefail
cd "$(dirname "$0")"
../tts/say --lang zh --voice zm_yunjian --speed 0.9 --out caller_zh.wav "$(cat caller_zh.txt)"
../tts/say --lang en --voice am_michael --speed 0.9 --out caller_en.wav "$(cat caller_en.txt)"
