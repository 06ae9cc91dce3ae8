#!/usr/bin/env bash
# up.sh — start the docker compose OMX cluster of this folder: writes a cluster key to
# compose/cluster.key the first time (mode 0600; never commit it, .gitignore keeps it out),
# checks the map, then `docker compose up -d --build`. Extra arguments go to `docker compose up`
# (e.g. `compose/up.sh node1 node2`). Stop with `docker compose -f compose/docker-compose.yml down`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key="$here/cluster.key"

docker compose version >/dev/null 2>&1 \
  || { echo "up.sh: no 'docker compose' (Compose v2): install it (on Debian 12: sudo scripts/install-compose.sh)" >&2; exit 1; }

if [[ ! -e "$key" ]]; then
  if command -v omx >/dev/null; then
    omx keygen -o "$key"
  else
    # The same format as `omx keygen`: 32 random bytes as 64 hex digits, mode 0600.
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$key.tmp" && echo >>"$key.tmp" && mv "$key.tmp" "$key")
    echo "up.sh: wrote a new cluster key to $key"
  fi
fi
chmod 0600 "$key"
if command -v omx >/dev/null; then omx map check -f "$here/cluster.map" >/dev/null; fi

docker compose -f "$here/docker-compose.yml" up -d --build "$@"
echo "up.sh: started; try: docker compose -f $here/docker-compose.yml exec node1 omx status"
