#!/usr/bin/env bash
# The picture in README: tutorials 01 and 04 recorded as an HTML handout, the first screens of it photographed by
# Debian's headless Chromium (apt-get install chromium-headless-shell). Run from the repository root after
# `swift build -c release`; writes docs/handout.png.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd sessions
../.build/release/normlab -c "record $work/handout.html; run 01-first-groupnorm-by-hand.nl; record stop" > /dev/null
cd ..
# The derivation and the pictures: the page from the `explain forward` command on.
python3 - "$work/handout.html" "$work/part.html" <<'PY'
import sys
page = open(sys.argv[1], encoding="utf-8").read()
start = page.index('<section class="command">\n<pre class="input"><span class="prompt">normlab&gt;</span> explain forward')
head = page[:page.index("<main>") + len("<main>")]
open(sys.argv[2], "w", encoding="utf-8").write(head + page[start:])
PY
chromium-headless-shell --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$work/shot.png" \
    --window-size=1000,1250 "file://$work/part.html" 2>/dev/null
cp "$work/shot.png" docs/handout.png
echo "docs/handout.png: $(wc -c < docs/handout.png) bytes"
