#!/usr/bin/env bash
# Installs dependencies, builds Tessera, and trains the default GPT (configs/shakespeare_char.yaml)
# on the bundled tiny Shakespeare under mpirun, tensor parallel over 2 ranks. RANKS=4 (or 6, 12)
# adds data parallelism with the same global batch of 12; extra arguments go to
# `tessera train` (e.g. --set train.max_steps=200).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
ranks=${RANKS:-2}
dp=$((ranks / 2))
mpirun --oversubscribe --allow-run-as-root -np "$ranks" \
  build/launcher/tessera train configs/shakespeare_char.yaml \
  --set parallel.tensor_model_parallel_size=2 --set train.micro_batch_size=$((12 / dp)) "$@"
