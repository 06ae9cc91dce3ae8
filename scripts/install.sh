#!/usr/bin/env bash
# install.sh — install OMX on this machine (bare metal, systemd), idempotently:
#   - the executables omx, omx-discovery, omx-balancer, omx-migrator, omx-fsgateway and
#     omx-jobinit into /usr/local/bin (built with --static-swift-stdlib: no Swift runtime needed);
#   - the systemd units of compose/systemd/ into /etc/systemd/system, and /usr/sbin/mount.mfs
#     (mount(8)'s helper for the fstab line `mfs_mnt /mfs mfs dfsa=1 0 0`);
#   - /etc/omx with an omx.conf (compose/omx.conf: every key, commented out) when there is none;
#   - the runtime packages (libuv1, libprotobuf-c1, libssl3, libfuse3-3, fuse3, zlib1g) and a
#     CRIU >= 4 (scripts/install-criu.sh).
# It starts nothing and never touches an existing map, key or omx.conf; it prints what to do next.
#
# Usage: sudo scripts/install.sh [--from DIR] [--root DIR] [--no-deps]
#   --from DIR   take the executables from DIR (default: build them with
#                `swift build -c release --static-swift-stdlib`, the main job's build)
#   --root DIR   install beneath DIR instead of / (packaging, tests); implies --no-deps
#   --no-deps    do not install Debian packages or CRIU
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
from="" root="" deps=1
while (($#)); do
  case "$1" in
    --from) from=${2:?--from needs a folder}; shift 2 ;;
    --root) root=${2:?--root needs a folder}; deps=0; shift 2 ;;
    --no-deps) deps=0; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
root=${root%/}

log() { echo "install: $*"; }
die() { echo "install: ERROR: $*" >&2; exit 1; }
[[ -n "$root" || $EUID -eq 0 ]] || die "run as root (sudo $0), or pass --root DIR"

executables=(omx omx-discovery omx-balancer omx-migrator omx-fsgateway omx-jobinit)
units=(omx.target omx-discovery.service omx-balancer.service omx-migrator.service omx-fsgateway@.service omx-mfs.service)

# --- 1. the executables ----------------------------------------------------------------------

if [[ -z "$from" ]]; then
  command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"   # sudo resets PATH
  command -v swift >/dev/null || die "no swift on PATH to build with (or pass --from DIR with built executables)"
  log "building the release executables (swift build -c release --static-swift-stdlib)"
  (cd "$repo" && swift build -c release --static-swift-stdlib >&2)
  from=$(cd "$repo" && swift build -c release --static-swift-stdlib --show-bin-path)
fi
for exe in "${executables[@]}"; do
  [[ -x "$from/$exe" ]] || die "$from/$exe is missing"
done
if ldd "$from/omx-discovery" 2>/dev/null | grep -q 'libswift'; then
  log "WARNING: $from/omx-discovery needs the Swift runtime libraries (built without --static-swift-stdlib):" \
      "it runs only where that toolchain is installed at the same path"
fi

changed=0
install_file() {   # $1 = mode, $2 = source, $3 = destination
  if [[ -f "$3" ]] && cmp -s "$2" "$3" && [[ "$(stat -c %a "$3")" == "${1#0}" ]]; then return 0; fi
  mkdir -p "$(dirname "$3")"
  local tmp
  tmp=$(mktemp "$(dirname "$3")/.omx-install.XXXXXX")
  install -m "$1" "$2" "$tmp"
  mv -f "$tmp" "$3"   # atomic: a running service keeps its old executable
  log "installed $3"
  changed=$((changed + 1))
}

for exe in "${executables[@]}"; do
  install_file 0755 "$from/$exe" "$root/usr/local/bin/$exe"
done
# mount(8)'s helper for the fstab line `mfs_mnt /mfs mfs dfsa=1 0 0`.
helper="$root/usr/sbin/mount.mfs"
if [[ "$(readlink "$helper" 2>/dev/null)" != /usr/local/bin/omx-fsgateway ]]; then
  mkdir -p "$root/usr/sbin"
  ln -sfn /usr/local/bin/omx-fsgateway "$helper"
  log "linked $helper -> /usr/local/bin/omx-fsgateway"
  changed=$((changed + 1))
fi

# --- 2. the systemd units --------------------------------------------------------------------

units_changed=$changed
for unit in "${units[@]}"; do
  install_file 0644 "$repo/compose/systemd/$unit" "$root/etc/systemd/system/$unit"
done
units_changed=$((changed - units_changed))
if ((units_changed)) && [[ -z "$root" && -d /run/systemd/system ]]; then
  systemctl daemon-reload
  log "systemctl daemon-reload"
fi

# --- 3. /etc/omx -------------------------------------------------------------------------------

# /etc/omx is 0755 and omx.conf 0644: every user's `omx` reads omx.conf (run_dir, ports...);
# only the key is private (0600, which every service checks).
if [[ ! -d "$root/etc/omx" ]]; then
  install -d -m 0755 "$root/etc/omx"
  log "created $root/etc/omx"
fi
conf="$root/etc/omx/omx.conf"
if [[ ! -e "$conf" ]]; then
  if [[ -f "$repo/compose/omx.conf" ]]; then
    install -m 0644 "$repo/compose/omx.conf" "$conf"
  else
    cat >"$conf" <<'EOF'
# /etc/omx/omx.conf — OMX configuration of this node (key = value lines in [sections]).
# Every OMX service and the omx command read it; OMX_CONFIG or --config name another file.
# Nothing set here means the defaults: the map /etc/openmosix.map, the key
# /etc/omx/cluster.key, the run directory /run/omx, /mfs mounted at /mfs.
# The keys are described in compose/omx.conf and compose/README.md of the OMX repository.
EOF
    chmod 0644 "$conf"
  fi
  log "wrote $conf"
  changed=$((changed + 1))
fi
key="$root/etc/omx/cluster.key"
if [[ -e "$key" && "$(stat -c %a "$key")" != 600 ]]; then
  log "WARNING: $key has mode $(stat -c %a "$key"): the services refuse it until 'chmod 600 $key'"
fi

# --- 4. runtime packages and CRIU --------------------------------------------------------------

if ((deps)); then
  packages=(libuv1 libprotobuf-c1 libssl3 libfuse3-3 fuse3 zlib1g)
  missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  "$repo/scripts/install-criu.sh" | sed -n '$p'
fi

if ((changed)); then log "done ($changed files changed)"; else log "done: everything was already installed"; fi
cat <<EOF

Next steps on this node (the same on every node):
  1. The map, identical on every node:   edit /etc/openmosix.map, e.g. "1 192.168.1.1 4"
                                          omx map check
  2. The key, one for the whole cluster:  omx keygen          (on one node only)
                                          copy /etc/omx/cluster.key to every node, mode 0600
  3. Options: /etc/omx/omx.conf; OMX_* variables for the services in /etc/default/omx
  4. Start and enable at boot:            systemctl enable --now omx.target
                                          omx status
  More FSGateway instances:               systemctl enable --now omx-fsgateway@1.service
  No /mfs mount:                          systemctl disable --now omx-mfs.service
  Or /mfs from /etc/fstab instead of omx-mfs.service (the openMosix HOWTO's line):
                                          mfs_mnt /mfs mfs dfsa=1 0 0
EOF
