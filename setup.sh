#!/usr/bin/env bash
# Create .venv with textclf installed (editable) and its dev tools. Safe to run again.
# Torch comes first and on its own line: a bare `torch` requirement would pull a multi-GB CUDA build
# on a machine that has none. Pick yours with TORCH_SPEC, e.g. TORCH_SPEC="torch==2.13.0" (default).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
fi
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
# The browser test drives Debian's chromium (never a downloaded browser). CI runs as root with CI=true:
# install it there (84 s here, download included); anywhere else the test is skipped with the reason.
if [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ] && ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "setup.sh: could not install chromium; tests/serving/test_browser.py will be skipped"
fi
.venv/bin/python -c "import textclf, torch; print(f'textclf {textclf.__version__} with torch {torch.__version__} ready in .venv')"
