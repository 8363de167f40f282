#!/usr/bin/env bash
# The linux-x64-gnu binary as published: built with napi's cross toolchain (a glibc 2.17
# sysroot, from the npm registry: @napi-rs/cross-toolchain-x64-target-x86_64), so it loads on
# Debian 11, Ubuntu 20.04, RHEL 8 and Amazon Linux 2; stripped; written into npm/linux-x64-gnu/.
# The everyday `npm run build` is not this: it builds for this machine, fast and incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
out=npm/linux-x64-gnu
npx napi build --platform --release --use-napi-cross --target x86_64-unknown-linux-gnu \
  --no-js --dts native.release.d.ts --output-dir "$out"
rm -f "$out/native.release.d.ts"
strip "$out/commerce-secret-manager.linux-x64-gnu.node"
ls -l "$out/commerce-secret-manager.linux-x64-gnu.node"
