#!/usr/bin/env bash
# Idempotent setup: a virtual environment in .venv with torch (CPU build from this
# machine's disk, installed first so nothing pulls a CUDA build) and formers itself.
# Re-running is cheap: packages are reinstalled only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
# Fashion-MNIST (real photographs, for the vision recipes) comes from Debian's package: no download at run time.
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
fi
# Chromium (a real browser for the attention viewer's tests, driven by Playwright): Debian's build, never a download.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
fi
stamp=.venv/.formers-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import formers" 2>/dev/null; then
  # setuptools' editable-install warnings are noise; show the log only if the install fails.
  if ! .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]" > .venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
