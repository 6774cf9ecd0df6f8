#!/usr/bin/env bash
# The first thing to run: build, start the gateway, place one demo call to it (menu digit 1,
# a spoken Mandarin complaint, #), and show the call record, the caller's recorded message and
# what the caller heard.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
models/fetch.sh base     # the Whisper model, so the ticket carries a transcript
cargo run --release --quiet -- demo --config config/hotline.toml "$@"
