#!/usr/bin/env bash
# The rate limiter's benchmarks, with what they need:
#   bench/ratelimit/run.sh [BUILD_DIR] [SECONDS_PER_RUN]
#
# Installs redis-server (Redis 7, the peer the throughput benchmark runs
# the same load against) and libhiredis-dev (its C client) from Debian if
# they are missing -- here, never from `make test` -- then configures and
# builds BUILD_DIR (default build-rl) and runs
#   bench-ratelimit-accuracy   sliding window counter vs exact sliding log
#   bench-ratelimit            decisions/s and p50/p99, ringkv vs Redis
# Each prints its figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build-rl}"
seconds="${2:-3}"

need=()
for p in redis-server libhiredis-dev; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    need+=("$p")
  fi
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (benchmark peer: Redis with the fixed-window Lua script)"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
  # The packaged service is not wanted: the benchmark starts its own
  # redis-server on a free loopback port.
  if command -v systemctl >/dev/null && systemctl is-active -q redis-server 2>/dev/null; then
    $sudo systemctl stop redis-server || true
  fi
fi

cmake -S . -B "$build" -DRINGKV_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target bench-ratelimit bench-ratelimit-accuracy ringkv-ratelimit
"$build/bin/bench-ratelimit-accuracy"
"$build/bin/bench-ratelimit" "$build/bin/ringkv-ratelimit" "$seconds"
