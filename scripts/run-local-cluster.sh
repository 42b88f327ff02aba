#!/usr/bin/env bash
# Starts the local development cluster on loopback, as DESIGN.md describes
# it: three nodes (storage + membership agent each), two coordinators, one
# rate limiter, one ID generator. Frames are sealed with a cluster key made
# on first run. Runs in the foreground; Ctrl-C stops every process cleanly.
#
# usage: scripts/run-local-cluster.sh [BUILD_DIR]
set -euo pipefail

build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$top/$build/bin"
dir="$top/var/local-cluster"
mkdir -p "$dir/conf" "$dir/logs"

key="$dir/cluster.key"
[ -f "$key" ] || "$bin/ringkv" keygen "$key"

pids=()
names=()

stop_all() {
  trap - INT TERM
  echo
  echo "stopping the local cluster..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped."
  exit 0
}
trap stop_all INT TERM

# start SERVICE NAME RPC_PORT ADMIN_PORT [EXTRA_YAML [STREAM_PORT]]
start() {
  local service=$1 name=$2 rpc=$3 admin=$4 extra=${5:-} stream=${6:-}
  local stream_yaml=""
  [ -n "$stream" ] && stream_yaml="  stream_listen: stream://127.0.0.1:$stream"
  local conf="$dir/conf/$name.yaml"
  cat > "$conf" <<YAML
node:
  id: $name
rpc:
  listen: tcp://127.0.0.1:$rpc
$stream_yaml
admin:
  listen: 127.0.0.1:$admin
security:
  cluster_key_file: $key
log:
  level: info
$extra
YAML
  "$bin/ringkv-$service" --config "$conf" >"$dir/logs/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name tcp://127.0.0.1:$rpc http://127.0.0.1:$admin")
}

mkdir -p "$dir/data"
# agent N gossips through agent 1 and vouches for storage node N
agent() {
  cat <<YAML
membership:
  data_dir: $dir/data/membership-$1
  seeds: [tcp://127.0.0.1:7301]
  health_check: tcp://127.0.0.1:720$1
YAML
}

start storage     storage-1     7201 8201
start membership  membership-1  7301 8301 "$(agent 1)"
start storage     storage-2     7202 8202
start membership  membership-2  7302 8302 "$(agent 2)"
start storage     storage-3     7203 8203
start membership  membership-3  7303 8303 "$(agent 3)"
start coordinator coordinator-1 7101 8101
start coordinator coordinator-2 7102 8102
start ratelimit   ratelimit-1   7401 8401 "ratelimit:
  rules_file: $top/deploy/config/ratelimit-rules.yaml" 7411
start idgen       idgen-1       7501 8501 "idgen:
  datacenter_id: 0
  worker_id: 1
  data_dir: $dir/data/idgen-1"

# Ready means: answers a sealed Health call (what READY=1 means under
# systemd). Each probe waits up to its own timeout; a process that died
# is reported at once.
for i in "${!pids[@]}"; do
  set -- ${names[$i]}
  ok=0
  for _ in $(seq 1 50); do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "$1 exited; its log:"; cat "$dir/logs/$1.log"; stop_all
    fi
    if "$bin/ringkv" health --key "$key" --timeout 200 "$2" >/dev/null 2>&1; then
      ok=1; break
    fi
  done
  [ $ok = 1 ] || { echo "$1 did not become ready"; stop_all; }
done

echo "ringkv local cluster is up (logs in var/local-cluster/logs):"
printf '  %-15s %-24s %s\n' NAME RPC ADMIN
for n in "${names[@]}"; do printf '  %-15s %-24s %s\n' $n; done
echo
k=var/local-cluster/cluster.key
echo "try: $build/bin/ringkv health --key $k tcp://127.0.0.1:7201"
echo "     $build/bin/ringkv cluster status --key $k tcp://127.0.0.1:7301"
echo "     $build/bin/ringkv id next --key $k -n 3 tcp://127.0.0.1:7501"
echo "     $build/bin/ringkv ratelimit check --key $k stream://127.0.0.1:7411 ringkv client_id=alice"
echo "     curl http://127.0.0.1:8201/metrics"
echo "Ctrl-C stops the cluster."
wait
