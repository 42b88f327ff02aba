#!/usr/bin/env bash
# Installs the Debian packages that ringkv needs to build, test and run,
# and only those that are missing, so that running it again costs nothing.
#
# Why each package:
#   build-essential cmake pkg-config   the compiler and the build
#   libnng-dev                         transport: req/rep, pub/sub, HTTP admin
#   libprotobuf-c-dev protobuf-c-compiler   wire contracts in proto/
#   libsodium-dev                      frame sealing (AEAD), keyed hashes
#   libyaml-dev                        the one YAML config format
#   libsystemd-dev                     sd_notify readiness and watchdog
#   libcmocka-dev                      unit tests
#   liblz4-dev                         SSTable block compression
#   curl                               tests and operators poke admin ports
#   faketime                           idgen tests move a real process's clock
#
# With --fuzz, also clang and its runtime for the libFuzzer targets.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libnng-dev libprotobuf-c-dev protobuf-c-compiler
  libsodium-dev libyaml-dev libsystemd-dev libcmocka-dev liblz4-dev
  curl faketime
)
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
