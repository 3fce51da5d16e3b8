#!/usr/bin/env bash
# Rebuilds the built-in classifier's corpus and heads: regenerates `../data/prompts.jsonl` from the seeds,
# fits both heads on its `train` split with the gateway's own embedder and features (`sluice route train`),
# writes them to `../weights/`, and measures the result on the held-out split (`sluice route eval`).
# Deterministic: the same seeds and model files give the same bytes.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root"
models="${SLUICE_MODELS_DIR:-models}"

(cd policies/classifier/data && python3 generate.py)
cargo run --locked --quiet -- route train policies/classifier/data/prompts.jsonl \
  --out policies/classifier/weights --models "$models"
# The gateway embeds the new heads at its next build.
cargo run --locked --quiet -- route eval policies/classifier/data/prompts.jsonl --split heldout \
  --models "$models"
