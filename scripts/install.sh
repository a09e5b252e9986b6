#!/usr/bin/env bash
# Install normlab with the Swift runtime linked in (it then runs without the toolchain) and its manual page.
# Usage: scripts/install.sh [PREFIX]      (default /usr/local; needs write access there)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-/usr/local}"
swift build -c release --product normlab --static-swift-stdlib
binary="$(swift build -c release --static-swift-stdlib --show-bin-path)/normlab"
install -d "$prefix/bin" "$prefix/share/man/man1"
install -m 0755 "$binary" "$prefix/bin/normlab"
if command -v strip >/dev/null 2>&1; then strip "$prefix/bin/normlab"; fi  # about 80 MB → 60 MB
"$prefix/bin/normlab" --man > "$prefix/share/man/man1/normlab.1"
echo "installed $prefix/bin/normlab and $prefix/share/man/man1/normlab.1 (man normlab)"
