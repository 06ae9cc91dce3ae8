#!/usr/bin/env bash
# Installs what is missing, builds once, and runs every test (unit and end-to-end).
# End-to-end tests start real services on 127.0.0.x; tests that need root say so loudly when
# they cannot run. Usage: sudo scripts/test.sh [swift test --filter PATTERN]
set -euo pipefail
cd "$(dirname "$0")/.."
# sudo resets PATH: find the Swift toolchain where this machine kind installs it.
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
scripts/setup.sh
echo "test: building (debug, with tests)"
swift build --build-tests
echo "test: running"
swift test --skip-build --disable-swift-testing "$@"
