#!/usr/bin/env bash
# One command: set up (if needed) and run every test: forge (contracts) and pytest
# (artifacts, storage, datasets, chain client, CLI end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== forge test"
# The platform binary itself: npm's node wrapper (node_modules/.bin/forge) exits 0 even
# when tests fail.
forge="$(echo node_modules/@foundry-rs/forge-*/bin/forge)"
"$forge" test
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
