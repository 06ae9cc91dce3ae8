#!/usr/bin/env bash
# Regenerates the committed protoc-c output in proto/c from the .proto files beside this script.
# Usage: proto/generate.sh [OUTPUT_DIR]   (default: proto/c; the freshness test passes a temp dir)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/c}"
mkdir -p "$out"
cd "$here"
protoc-c --proto_path=. --c_out="$out" ./*.proto
