#!/usr/bin/env bash
# Set up, lint, then run the default test suite (slow tests too when FORMERS_SLOW=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Passive OpenMP waits: with spin-waiting, small ops on shared cores stall for a scheduler slot (23 ms vs 0.4 ms).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_WAIT_POLICY=PASSIVE
.venv/bin/ruff check formers tests benchmarks studies
args=(-q -m "not slow")
if [ "${FORMERS_SLOW:-0}" = "1" ]; then args=(-q); fi
exec .venv/bin/python -m pytest "${args[@]}" "$@"
