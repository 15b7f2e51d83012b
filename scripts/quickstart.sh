#!/usr/bin/env bash
# Installs dependencies, builds Tessera, and trains the default GPT (configs/shakespeare_char.yaml,
# nanoGPT's CPU recipe) on the bundled tiny Shakespeare as a model-parallel job under mpirun:
# tensor parallel 2 x pipeline parallel 2 (1F1B over 4 microbatches of 3 sequences), with
# data parallelism on top when RANKS is 8 or 16. Extra arguments go to `tessera train`
# (e.g. --set train.max_steps=200).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
ranks=${RANKS:-4}
if (( ranks % 4 != 0 || 12 % (3 * (ranks / 4)) != 0 )); then
  echo "quickstart: RANKS must be 4, 8 or 16 (tp 2 x pp 2 x dp 1, 2 or 4)" >&2
  exit 2
fi
mpirun --oversubscribe --allow-run-as-root -np "$ranks" \
  build/launcher/tessera train configs/shakespeare_char.yaml \
  --set parallel.tensor_model_parallel_size=2 --set parallel.pipeline_model_parallel_size=2 \
  --set train.micro_batch_size=3 "$@"
