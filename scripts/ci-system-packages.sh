#!/usr/bin/env bash
# System packages the test suite needs that are not npm packages: Debian's Chromium for the
# browser tests (playwright-core drives /usr/bin/chromium; nothing downloads a browser).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
chromium --version
