#!/usr/bin/env bash
# omx-node: runs every part of one OMX node in the foreground — Discovery, Balancer, Migrator,
# OMX_GATEWAYS FSGateway instances and the /mfs mount — restarts a part that dies, and stops
# them in order on SIGTERM or SIGINT. It is the main process of each container of
# compose/docker-compose.yml (under tini, which reaps orphans); it works on any machine without
# systemd too. Services log to standard error, which is the container's log.
#
# Configuration is what the services read by themselves: /etc/omx/omx.conf (or OMX_CONFIG), the
# map (/etc/openmosix.map or OMX_MAP), the key (/etc/omx/cluster.key or OMX_KEY), OMX_* variables.
# This script reads:
#   OMX_GATEWAYS     FSGateway instances on this node (default 1; instance K listens on 7710+K)
#   OMX_MFS          on/off: serve and mount the cluster's files (default: [mfs] enabled of
#                    omx.conf, else on); off starts neither gateways nor the mount
#   OMX_MOUNTPOINT   where (default: [mfs] mountpoint of omx.conf, else /mfs)
#   OMX_BIN          where the omx-* executables are (default: this script's directory)
#   OMX_STOP_SECONDS how long the Migrator may take to send guest jobs away on stop (default 60)
set -uo pipefail

conf=${OMX_CONFIG:-/etc/omx/omx.conf}

conf_value() {   # $1 = section, $2 = key: the value in omx.conf, or nothing
  [[ -r "$conf" ]] || return 0
  awk -v want="$1" -v key="$2" '
    { sub(/#.*/, ""); gsub(/^[ \t]+|[ \t]+$/, "") }
    /^\[/ { section = $0; gsub(/^\[[ \t]*|[ \t]*\]$/, "", section); next }
    section == want && index($0, "=") {
      k = substr($0, 1, index($0, "=") - 1); v = substr($0, index($0, "=") + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
      if (k == key) { print v; exit }
    }' "$conf"
}

gateways=${OMX_GATEWAYS:-1}
mfs=${OMX_MFS:-$(conf_value mfs enabled)}
mfs=${mfs:-on}
mountpoint=${OMX_MOUNTPOINT:-$(conf_value mfs mountpoint)}
mountpoint=${mountpoint:-/mfs}
bin=${OMX_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
stop_seconds=${OMX_STOP_SECONDS:-60}

log() { echo "omx-node: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$gateways" =~ ^[0-9]+$ ]] || die "OMX_GATEWAYS must be a number (got '$gateways')"
case "${mfs,,}" in on|yes|true|1) mfs=on ;; off|no|false|0) mfs=off ;; *) die "OMX_MFS must be on or off (got '$mfs')" ;; esac
for exe in omx-discovery omx-balancer omx-migrator omx-fsgateway omx-jobinit; do
  [[ -x "$bin/$exe" ]] || die "$bin/$exe is missing (set OMX_BIN)"
done

# The parts in start order; they stop in the reverse order: the Balancer first (no new
# decisions), then the Migrator (sends guest jobs away), the mount, the gateways, Discovery last.
names=(discovery)
declare -A command=([discovery]="$bin/omx-discovery")
if [[ $mfs == on ]]; then
  for ((k = 0; k < gateways; k++)); do
    names+=("fsgateway-$k"); command[fsgateway-$k]="$bin/omx-fsgateway serve --instance $k"
  done
  names+=(mfs); command[mfs]="$bin/omx-fsgateway mount $mountpoint"
else
  log "oMFS is off: no FSGateway, no mount"
fi
names+=(migrator balancer)
command[migrator]="$bin/omx-migrator"
command[balancer]="$bin/omx-balancer"

declare -A pid=() name_of=() starts=()
stopping=0

unmount() {
  if grep -qs " $mountpoint fuse" /proc/self/mounts; then
    fusermount3 -u -z "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null || true
  fi
}

start() {   # $1 = part name
  local part=$1
  [[ $part == mfs ]] && unmount
  # shellcheck disable=SC2086  # the command lines are word lists without quoting needs
  ${command[$part]} &
  pid[$part]=$!
  name_of[$!]=$part
  log "started $part (pid $!): ${command[$part]}"
}

stop_part() {   # $1 = part name, $2 = seconds before SIGKILL
  local part=$1 seconds=$2 p=${pid[$1]:-}
  [[ -n "$p" ]] || return 0
  if kill -0 "$p" 2>/dev/null; then
    log "stopping $part (pid $p)"
    kill -TERM "$p" 2>/dev/null
    local deadline=$((SECONDS + seconds))
    while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
      log "$part did not stop within ${seconds} s: SIGKILL"
      kill -KILL "$p" 2>/dev/null
    fi
  fi
  wait "$p" 2>/dev/null
  unset "pid[$part]"
  [[ $part == mfs ]] && unmount
  return 0
}

shutdown() {   # $1 = exit status (default 0)
  stopping=1
  log "stopping the node"
  local i part
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do
    part=${names[i]}
    if [[ $part == migrator ]]; then stop_part "$part" "$stop_seconds"; else stop_part "$part" 15; fi
  done
  log "stopped"
  exit "${1:-0}"
}
trap 'shutdown 0' TERM INT

if command -v omx-criu >/dev/null && ! omx-criu check 2>&1 | grep -q "Looks good"; then
  log "WARNING: 'omx-criu check' does not say 'Looks good': jobs will run but cannot migrate" \
      "(the container needs CAP_SYS_ADMIN, CAP_CHECKPOINT_RESTORE, CAP_SYS_PTRACE, seccomp and apparmor unconfined)"
fi

for part in "${names[@]}"; do start "$part"; done

# Supervise: a part that exits is started again after a second. One that exits five times within
# a minute is given up: Discovery or the Migrator stop the node (the container's restart policy
# takes over from there); without a gateway, the mount or the Balancer the node runs on.
while true; do
  finished=""
  wait -n -p finished
  status=$?
  ((stopping)) && continue
  if [[ -z "$finished" || -z "${name_of[$finished]:-}" ]]; then
    ((status == 127)) && sleep 1   # no child left to wait for (should not happen)
    continue
  fi
  part=${name_of[$finished]}
  unset "name_of[$finished]"
  log "$part (pid $finished) exited with status $status"
  now=$SECONDS
  recent=()
  for t in ${starts[$part]:-}; do ((now - t < 60)) && recent+=("$t"); done
  recent+=("$now")
  starts[$part]="${recent[*]}"
  if ((${#recent[@]} >= 5)); then
    case $part in
      discovery|migrator)
        log "$part exited ${#recent[@]} times within a minute: stopping the node"
        shutdown 1 ;;
      *)
        log "$part exited ${#recent[@]} times within a minute: giving it up (see its errors above)"
        unset "pid[$part]"
        continue ;;
    esac
  fi
  sleep 1
  ((stopping)) || start "$part"
done
