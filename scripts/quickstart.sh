#!/usr/bin/env bash
# Quick start: set up, then train the default GPT recipe on the embedded Python docs
# and show what it learned (validation loss before/after, generated samples). The recipe's
# trainer.max_minutes stops a slow machine after 14 minutes with a checkpoint; run this script
# again with --resume=true to continue the same schedule.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/formers train recipes/gpt-pydocs-char.yaml --out runs/gpt-pydocs-char "$@"
