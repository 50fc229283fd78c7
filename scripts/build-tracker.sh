#!/usr/bin/env bash
# Regenerate tracker/script.min.js from tracker/script.js with terser (pinned
# in tests/browser/package-lock.json) and print its size, raw and gzipped.
# Headcount embeds the minified file, so rebuild the binary afterwards.
#
#   scripts/build-tracker.sh          write tracker/script.min.js
#   scripts/build-tracker.sh --check  exit 1 if it is stale
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -d tests/browser/node_modules/terser ]]; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
exec node tests/browser/build-tracker.mjs "$@"
