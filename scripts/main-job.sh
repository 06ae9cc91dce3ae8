#!/usr/bin/env bash
# The main job: installs what is missing, builds, starts a local 3-node OMX cluster on
# 127.0.0.1-3 (every service of every node as its own process), shows that every service of
# every node answers over TCP with the cluster key and over its Unix socket, and stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "main-job: building (release)"
swift build -c release
bin="$(swift build -c release --show-bin-path)"
omx="$bin/omx"

dir="$(mktemp -d /tmp/omx-main-job.XXXXXX)"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT

export OMX_MAP="$dir/openmosix.map" OMX_KEY="$dir/cluster.key"
cp compose/local-cluster.map "$OMX_MAP"
"$omx" keygen -o "$OMX_KEY"
"$omx" map check

echo "main-job: starting discovery, balancer, migrator and two fsgateway instances on nodes 1-3"
for node in 1 2 3; do
  run="$dir/node-$node/run"
  mkdir -p "$run"
  for service in discovery balancer migrator; do
    "$bin/omx-$service" --node-id "$node" --run-dir "$run" 2>"$dir/node-$node/$service.log" &
    pids+=($!)
  done
  for instance in 0 1; do
    "$bin/omx-fsgateway" serve --instance "$instance" --node-id "$node" --run-dir "$run" \
      2>"$dir/node-$node/fsgateway-$instance.log" &
    pids+=($!)
  done
done
for node in 1 2 3; do
  for socket in discovery balancer migrator fsgateway-0 fsgateway-1; do
    for _ in $(seq 100); do [[ -S "$dir/node-$node/run/$socket.sock" ]] && break; sleep 0.05; done
  done
done

answered=0
for node in 1 2 3; do
  for service in discovery balancer migrator fsgateway; do
    "$omx" ping "$service" --node "$node" --count 3
    answered=$((answered + 1))
  done
  "$omx" ping fsgateway --instance 1 --node "$node"
  answered=$((answered + 1))
done
"$omx" ping discovery --run-dir "$dir/node-1/run"

echo "main-job: stopping every service with SIGTERM"
clean=0
for pid in "${pids[@]}"; do
  kill -TERM "$pid"
  if wait "$pid"; then clean=$((clean + 1)); fi
done
pids=()
echo "main-job: summary: 3 nodes, ${answered} service instances answered over TCP (HMAC-signed) and Unix sockets; ${clean} of 15 processes exited cleanly on SIGTERM; logs in $dir"
[[ $clean -eq 15 ]]
