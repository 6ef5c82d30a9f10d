#!/usr/bin/env bash
# Installs what tools/web-test.sh needs when it is missing (run by .ci/run before it):
# Chromium (Debian's package: WebGPU on SwiftShader, no GPU needed), the wasm32 target, and
# the wasm-bindgen CLI at the version of the wasm-bindgen crate in examples/web/Cargo.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
    echo "web-ci-setup: installing chromium"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo "web-ci-setup: rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' examples/web/Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
    echo "web-ci-setup: cargo install wasm-bindgen-cli --version $want (found: ${have:-none})"
    cargo install wasm-bindgen-cli --version "$want"   # (--locked fails to resolve here)
fi
