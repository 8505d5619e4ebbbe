#!/usr/bin/env bash
# Sets up everything Cove needs in this checkout: a virtualenv with torch==2.13.0 first
# (the local CPU wheel; a looser requirement would pull GBs of CUDA packages), then the
# project, then the pinned npm packages (solc-js, OpenZeppelin, anvil, forge).
# Idempotent: a second run only checks stamps and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

python_stamp=".venv/.cove-setup"
python_want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
if [[ "$(cat "$python_stamp" 2>/dev/null)" != "$python_want" ]]; then
  echo "setup: installing Python packages into .venv ..."
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
  echo "$python_want" > "$python_stamp"
fi

# bubblewrap gives the runner's training sandbox its strongest form; without it the runner
# falls back to util-linux's unshare. Installed only where we may (root with apt-get).
if ! command -v bwrap > /dev/null && [[ "$(id -u)" == 0 ]] && command -v apt-get > /dev/null; then
  echo "setup: installing bubblewrap ..."
  apt-get install -y -qq bubblewrap > /dev/null 2>&1 \
    || { apt-get update -qq > /dev/null 2>&1 && apt-get install -y -qq bubblewrap > /dev/null 2>&1; } \
    || echo "setup: bubblewrap unavailable; the sandbox uses unshare"
fi

# Debian's chromium: the browser the market page's test drives headless (Playwright is
# pointed at it; its own browser download is never used).
if ! command -v chromium > /dev/null && [[ "$(id -u)" == 0 ]] && command -v apt-get > /dev/null; then
  echo "setup: installing chromium ..."
  apt-get install -y -qq chromium > /dev/null 2>&1 \
    || { apt-get update -qq > /dev/null 2>&1 && apt-get install -y -qq chromium > /dev/null 2>&1; } \
    || echo "setup: chromium unavailable; the market page's browser test will fail"
fi

node_stamp="node_modules/.cove-setup"
node_want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]]; then
  echo "setup: installing npm packages ..."
  npm install --no-audit --no-fund --loglevel=error
  echo "$node_want" > "$node_stamp"
fi
