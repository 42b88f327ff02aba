#!/usr/bin/env bash
# Installs LevelDB and RocksDB (the peers bench-lsm compares against),
# builds bench-lsm with them and runs it. Never part of `make test`.
#   bench/lsm/run.sh [BUILD_DIR] [bench-lsm args...]
# e.g. a quick run: bench/lsm/run.sh build-lsm --num 100000 --rounds 1
# The default (1,000,000 ops, 3 rounds) takes about 5-8 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build-lsm}"
shift || true
need=()
for p in libleveldb-dev librocksdb-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGKV_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench-lsm
exec "$build/bin/bench-lsm" "$@"
