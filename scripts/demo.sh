#!/usr/bin/env bash
# One command: set up (if needed) and run the end-to-end demo on a fresh local chain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/cove demo "$@"
