#!/usr/bin/env bash
# Create .venv (once) and install riskmodel with its test extra. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
# Debian packages the tests and plots use: headless chromium for the report's browser test
# (tests/test_report.py) and a CJK font so Chinese labels in the PNGs are not boxes. Installed when
# missing and we can (root, apt-get); never fail the setup over them - the browser test skips
# without chromium and the plots fall back to boxes without the font.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v dpkg >/dev/null 2>&1 && ! dpkg -s fonts-wqy-microhei >/dev/null 2>&1 && missing+=(fonts-wqy-microhei)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
    >/dev/null 2>&1 || echo "setup: could not install ${missing[*]}; see scripts/setup.sh" >&2
fi
