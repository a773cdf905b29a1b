#!/usr/bin/env bash
# Runs the browser tests: the web pages in Debian's headless Chromium, driven by
# playwright-core, with axe-core accessibility checks and 360 px screenshots (written
# to browser-tests/output/). Needs `tirage` built with every feature (TIRAGE_BIN, by
# default target/debug/tirage), node with npm, and /usr/bin/chromium
# (`apt-get install chromium`). Without Chromium the tests are skipped, except in
# continuous integration (CI set), where that is a failure.
set -euo pipefail
cd "$(dirname "$0")"

chromium=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x "$chromium" ]]; then
    if [[ -n "${CI:-}" ]]; then
        echo "browser tests: $chromium is missing (apt-get install chromium); required in CI" >&2
        exit 1
    fi
    echo "browser tests SKIPPED: $chromium is missing (apt-get install chromium)"
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "browser tests: node and npm are required" >&2
    exit 1
fi
# playwright-core and axe-core only: no browser download.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
rm -rf output
node --test --test-concurrency=1 tests/
