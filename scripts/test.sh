#!/usr/bin/env bash
# One command: set up (if needed) and run every test: forge (contracts) and pytest
# (artifacts, storage, datasets, chain client, CLI end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== forge test"
node_modules/.bin/forge test
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
