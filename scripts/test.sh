#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit tests, integration tests against the real daemon
# with the built-in caller, sipp and raw SIP. External peers are required (not skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HOTLINE_REQUIRE_PEERS=1
cargo test --all-targets -- --test-threads 2
