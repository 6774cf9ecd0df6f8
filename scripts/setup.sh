#!/usr/bin/env bash
# Installs what hotline-gateway's demo and tests need on a Debian/Ubuntu machine, once.
# Idempotent: packages already present are not touched. Uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

# Test peers and audio tools: sipp (sip-tester), baresip, kamailio (the load-balancer recipe in
# deploy/kamailio/, tested by tests/it/kamailio.rs), espeak-ng + sox (prompts), and the
# toolchain whisper-rs needs (cmake, clang/libclang), and a real browser for the operator desk's
# tests (chromium + chromium-driver, driven over WebDriver by tests/it/console.rs), and PostgreSQL
# (the fleet's shared ticket store; tests/it/fleet.rs starts throwaway clusters of its own; openssl
# makes the certificates of its TLS test).
packages=(sip-tester baresip-core kamailio espeak-ng sox cmake clang libclang-dev chromium chromium-driver postgresql openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust from https://rustup.rs first" >&2
  exit 1
fi
