#!/usr/bin/env bash
# Installs dependencies, builds Tessera, and trains the default GPT (configs/shakespeare_char.yaml)
# on the bundled tiny Shakespeare under mpirun. RANKS (default 2) sets the number of ranks;
# extra arguments go to `tessera train` (e.g. --set train.max_steps=200).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
ranks=${RANKS:-2}
mpirun --oversubscribe --allow-run-as-root -np "$ranks" \
  build/launcher/tessera train configs/shakespeare_char.yaml \
  --set parallel.data_parallel_size=auto "$@"
