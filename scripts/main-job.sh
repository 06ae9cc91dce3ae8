#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs a local 3-node OMX cluster on
# 127.0.0.1-3 doing real work: every node's services as separate processes, membership and the
# service registry spreading by SWIM gossip, every service answering signed TCP calls, a
# counting job migrated 1 -> 2 -> 3 -> home with CRIU and checked for a lost or repeated
# line, six busy jobs on node 1 spread over the nodes by the Balancers, a file written on node 3
# through node 1's /mfs and read through node 2's, one SQLite database written from every node at
# once through /mfs (its file locks hold across the nodes), the services' metrics, a node killed
# and found dead everywhere, restarted and rejoining. It stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
# sudo resets PATH: find the Swift toolchain where this machine kind installs it.
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
scripts/setup.sh
echo "main-job: building (release, with the Swift runtime linked in, as scripts/install.sh deploys it)"
swift build -c release --static-swift-stdlib
omx="$(swift build -c release --static-swift-stdlib --show-bin-path)/omx"

dir="$(mktemp -d /tmp/omx-main-job.XXXXXX)"
trap '"$omx" cluster down --dir "$dir" >/dev/null 2>&1 || true' EXIT
export OMX_MAP="$dir/cluster.map" OMX_KEY="$dir/cluster.key" OMX_RUN_DIR="$dir/node-1/run"

echo "== a local cluster of 3 nodes (discovery, balancer, migrator, 2 fsgateway instances and a /mfs mount each)"
"$omx" cluster up --nodes 3 --dir "$dir" --gateways 2
"$omx" map check

state_of() { # node whose view, node asked about
  OMX_RUN_DIR="$dir/node-$1/run" "$omx" status | awk -v id="$2" '$1 == id { print $NF }'
}
wait_state() { # node-view, node, state, seconds; prints the time it took
  local start=$(date +%s%N)
  for _ in $(seq 1 $(( $4 * 20 ))); do
    if [[ "$(state_of "$1" "$2")" == "$3" ]]; then
      echo "$(( ($(date +%s%N) - start) / 1000000 )) ms"; return 0
    fi
    sleep 0.05
  done
  echo "not $3 after $4 s"; return 1
}
for _ in $(seq 1 60); do # every instance registered and gossiped
  [[ $("$omx" status | grep -c "balancer,fsgatewayx2,migrator") -eq 3 ]] && break
  sleep 0.1
done

echo "== membership and service registry, as node 1's Discovery sees them"
"$omx" status

echo "== every service of every node over TCP, signed with the cluster key"
answered=0
for node in 1 2 3; do
  for service in discovery balancer migrator fsgateway; do
    "$omx" ping "$service" --node "$node" --count 2 | tail -1
    answered=$((answered + 1))
  done
  "$omx" ping fsgateway --instance 1 --node "$node" | tail -1
  answered=$((answered + 1))
done

echo "== a job (omx run): a counter in its own PID namespace, migrated 1 -> 2 -> 3 -> home with CRIU"
job=$("$omx" run --name counter -- /bin/sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done')
sleep 0.5
"$omx" mps
for target in 2 3 home; do
  "$omx" migrate "$job" "$target"
  sleep 0.4
done
"$omx" mps
"$omx" kill "$job"
sleep 1
lines=$("$omx" logs "$job" | wc -l)
"$omx" logs "$job" | awk 'NR != $1 { print "main-job: line " NR " reads " $1 ": a number was lost or repeated"; bad = 1; exit 1 } END { exit bad }'
echo "the job's output has all $lines numbers once and in order; $("$omx" mps | awk -v j="$job" '$1 == j { print "it ended with: " $5 " " $6 }')"

echo "== the Balancer: 6 CPU-bound jobs started on node 1 spread by themselves (no command given)"
busy=()
for _ in 1 2 3 4 5 6; do busy+=("$("$omx" run --node 1 --name busy -- /bin/sh -c 'while :; do :; done')"); done
"$omx" mps
spread=""
for second in $(seq 1 30); do
  sleep 1
  spread=$("$omx" mps | awk '$5 == "running" { n[$3]++ } END { printf "%d/%d/%d", n[1], n[2], n[3] }')
  echo "after ${second} s: jobs on nodes 1/2/3: $spread"
  [[ "$spread" == "2/2/2" ]] && break
done
spread_seconds=$second
"$omx" mps
"$omx" mon --once | sed '/^$/d'
grep -h "move job" "$dir"/node-*/log/balancer.log | sed 's/.*\] /balancer: /' | head -4
"$omx" kill -KILL "${busy[@]}"

echo "== /mfs: a file written on node 3 through node 1's /mfs/3, read back through node 2's /mfs/3"
shared="$dir/shared"
mkdir -p "$shared"
date > "$dir/node-1/mfs/3$shared/note.txt"
echo "written through node 1's mount: $(cat "$dir/node-1/mfs/3$shared/note.txt")"
echo "read through node 2's mount:    $(cat "$dir/node-2/mfs/3$shared/note.txt")"
cmp "$dir/node-1/mfs/3$shared/note.txt" "$dir/node-2/mfs/3$shared/note.txt"
ls -la "$dir/node-2/mfs/"
df -h "$dir/node-2/mfs/3" | tail -1

echo "== /mfs file locks: one SQLite database on node 3, written by 3 processes at once through each node's /mfs/3"
db="$shared/counter.db"
python3 -c 'import sqlite3, sys; d = sqlite3.connect(sys.argv[1]); d.execute("CREATE TABLE counter (n INTEGER)"); d.execute("INSERT INTO counter VALUES (0)"); d.commit()' "$db"
count='import sqlite3, sys
d = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
for _ in range(50):
    d.execute("BEGIN IMMEDIATE")
    (n,) = d.execute("SELECT n FROM counter").fetchone()
    d.execute("UPDATE counter SET n = ?", (n + 1,))
    d.execute("COMMIT")'
writers=()
for node in 1 2 3; do
    python3 -c "$count" "$dir/node-$node/mfs/3$db" &
    writers+=($!)
done
for writer in "${writers[@]}"; do wait "$writer"; done
total=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT n FROM counter").fetchone()[0])' "$db")
echo "150 transactions (read the counter, add 1), 50 through each node's mount: the counter reads $total"
[ "$total" = 150 ]
# SQLite deletes its journal right after closing it, 150 times: none may stay as a hidden file.
for _ in $(seq 50); do
    hidden=$(find "$shared" -maxdepth 1 -name '.fuse_hidden*' | wc -l)
    [ "$hidden" = 0 ] && break
    sleep 0.1
done
echo "journals left behind as .fuse_hidden files on node 3: $hidden"
[ "$hidden" = 0 ]

echo "== omx metrics: what the services counted (Prometheus text, an excerpt)"
metrics=$("$omx" metrics --all)
echo "$metrics" | grep -E '^omx_(migrations_total|migration_freeze_seconds_(sum|count)|migrations_received_total|fs_written_bytes_total|balancer_moves_total)'
migrations=$(echo "$metrics" | awk '/^omx_migrations_total.*outcome="committed"/ { n += $NF } END { print n + 0 }')

echo "== node 3's Discovery killed with SIGKILL"
kill -9 "$(cat "$dir/node-3/run/discovery.pid")"
dead1=$(wait_state 1 3 dead 6); dead2=$(wait_state 2 3 dead 6)
echo "node 3 is dead on node 1 after $dead1, on node 2 after $dead2"
"$omx" status

echo "== node 3's Discovery restarted"
"$omx" cluster up --nodes 3 --dir "$dir" --gateways 2 | head -1
back=$(wait_state 1 3 alive 6)
echo "node 3 is alive again on node 1 after $back"

echo "== stopping the cluster"
"$omx" cluster down --dir "$dir"
trap - EXIT
echo "main-job: summary: 3 nodes, 15 service instances registered and answering signed TCP calls (${answered} pinged);"
echo "main-job: job $job migrated 1 -> 2 -> 3 -> home with nothing lost or repeated in its $lines lines;"
echo "main-job: 6 busy jobs started on node 1 were spread ${spread} by the Balancers after ${spread_seconds} s;"
echo "main-job: a file written through node 1's /mfs/3 read back the same through node 2's;"
echo "main-job: 150 SQLite transactions made at once through the 3 nodes' /mfs, under its file locks, all counted ($total), no journal left behind;"
echo "main-job: omx metrics counted ${migrations} committed migrations across the cluster;"
echo "main-job: a killed node was dead on node 1 after ${dead1} and rejoined after ${back}; everything stopped; logs in $dir"
