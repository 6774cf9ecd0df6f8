#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit tests, integration tests against the real daemon
# with the built-in caller, sipp, baresip and raw SIP, the ticket outage/crash tests. External
# peers are required (not skipped). Benchmarks are compiled (not run: see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HOTLINE_REQUIRE_PEERS=1
cargo build --benches --quiet
cargo test
