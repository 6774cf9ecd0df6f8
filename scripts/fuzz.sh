#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60) with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# cargo-fuzz wants a nightly compiler for its sanitizer flags; on the stable toolchain it
# runs with RUSTC_BOOTSTRAP=1 and `--sanitizer none` (libFuzzer's coverage guidance still
# works; crashes are panics, which is what the gateway promises never to do on network input).
# Install once: `cargo install cargo-fuzz --locked`. Corpora live in fuzz/corpus/<target>/
# (seeded from tests' messages on first run), crashes in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sip_parse sdp_answer rtp_dtmf)
command -v cargo-fuzz >/dev/null || { echo "cargo install cargo-fuzz --locked" >&2; exit 2; }
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  if [ -d "seeds/$t" ]; then cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true; fi
  if [ "$t" = sip_parse ] && [ -d ../../shared/sip-torture/rfc4475 ]; then
    cp -n ../../shared/sip-torture/rfc4475/*.dat "corpus/$t/" 2>/dev/null || true
  fi
  echo "== $t for ${secs}s" >&2
  cargo fuzz run --sanitizer none -O "$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=4096 -print_final_stats=1 2>&1 | \
    grep -E "^(stat::|#[0-9]+ *DONE|==[0-9]+== ERROR|SUMMARY|Test unit written|thread .* panicked)" || true
  if ls "artifacts/$t"/crash-* >/dev/null 2>&1; then
    echo "CRASH in $t: $(ls artifacts/"$t"/crash-*)" >&2
    exit 1
  fi
done
echo "fuzz: no crash in ${targets[*]} (${secs}s each)" >&2
