# trixie-download.sh — sourced by install-criu.sh and install-compose.sh. Downloads packages
# of Debian 13 (trixie) without touching the system's apt state: apt runs against private
# lists, cache and an empty status, from the Debian mirror this machine already uses, and
# checks the archive's signature with the Debian archive keyring. The caller defines log and die.

TRIXIE_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# The Debian archive URI this machine's apt already uses (not the security archive).
debian_mirror() {
  local mirror="" f
  shopt -s nullglob
  for f in /etc/apt/sources.list.d/*.sources; do
    # deb822: the URIs of a stanza whose Suites don't mention -security
    mirror=$(awk '
      BEGIN{RS=""}
      /(^|\n)Types:[^\n]*deb([ \t]|\n|$)/ && $0 !~ /Suites:[^\n]*-security/ {
        if (match($0, /(^|\n)URIs:[ \t]*[^ \t\n]+/)) {
          s=substr($0,RSTART,RLENGTH); sub(/^\n?URIs:[ \t]*/,"",s)
          if (s ~ /debian\/?$/) {print s; exit}
        }
      }' "$f")
    [[ -n "$mirror" ]] && break
  done
  if [[ -z "$mirror" ]]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [[ -r "$f" ]] || continue
      mirror=$(sed -e 's/\[[^]]*\]//' "$f" | awk '$1=="deb" && $3 !~ /-security/ && $2 ~ /debian\/?$/ {print $2; exit}')
      [[ -n "$mirror" ]] && break
    done
  fi
  shopt -u nullglob
  [[ -n "$mirror" ]] || return 1
  echo "${mirror%/}"
}

# trixie_download WORK PACKAGE... — the packages' .deb files land in WORK/debs; WORK (new or
# empty) also holds apt's private state and logs.
trixie_download() {
  local work=$1 tool mirror
  shift
  for tool in apt-get dpkg-deb gpg; do
    command -v "$tool" >/dev/null || die "required tool '$tool' not found"
  done
  [[ -r "$TRIXIE_KEYRING" ]] || die "$TRIXIE_KEYRING missing (install debian-archive-keyring)"
  if ! gpg --no-default-keyring --keyring "$TRIXIE_KEYRING" --list-keys 2>/dev/null | grep -q "(13/trixie)"; then
    die "$TRIXIE_KEYRING has no Debian 13/trixie key; upgrade debian-archive-keyring (bookworm's 2023.3+deb12u2 or later has it)"
  fi
  mirror=$(debian_mirror) || die "could not find a Debian archive mirror in /etc/apt/sources.list(.d)"
  log "using mirror $mirror (suite trixie)"

  chmod 0755 "$work"   # the _apt sandbox user must reach lists/ and debs/
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/etc"
  : >"$work/status"
  echo "deb [signed-by=$TRIXIE_KEYRING] $mirror trixie main" >"$work/etc/sources.list"
  if id _apt >/dev/null 2>&1; then chown -R _apt "$work/lists" "$work/cache" "$work/debs"; fi
  local apt=(apt-get -q
    -o Dir::Etc::SourceList="$work/etc/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences=/dev/null
    -o Dir::Etc::PreferencesParts=/dev/null
    -o Dir::State::Lists="$work/lists"
    -o Dir::State::status="$work/status"
    -o Dir::Cache="$work/cache"
    -o APT::Architecture=amd64
    -o APT::Architectures::=amd64
    -o Acquire::Languages=none
    -o Debug::NoLocking=1)

  log "fetching trixie's package lists into a private dir (system apt state untouched)"
  "${apt[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; die "apt-get update for trixie failed"; }
  if grep -qE '^(W|E):' "$work/update.log"; then
    grep -E '^(W|E):' "$work/update.log" >&2
    die "apt-get update for trixie reported warnings/errors (signature or mirror problem?)"
  fi
  log "downloading $*"
  (cd "$work/debs" && "${apt[@]}" download "$@") >"$work/download.log" 2>&1 \
    || { cat "$work/download.log" >&2; die "apt-get download $* failed"; }
}
