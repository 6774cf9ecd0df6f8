#!/usr/bin/env bash
# The first thing to run: build, fetch the Whisper model, start the gateway, place one demo call
# to it (menu digit 1, a spoken Mandarin complaint, #), and show the call record, the caller's
# recorded message, what the caller heard, and the ticket with its transcript.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run --release --quiet -- model fetch base base-q8_0 --dir models
cargo run --release --quiet -- demo --config config/hotline.toml "$@"
# The operator desk (issue 15): the demo's ticket is in var/tickets.sqlite, which `serve` reads.
echo "== the operator desk: run 'cargo run --release -- serve --config config/hotline.toml'"
echo "   then open http://127.0.0.1:8080/ and log in as demo / demo (supervisor; demo config only)"
