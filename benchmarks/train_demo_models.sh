#!/usr/bin/env bash
# Regenerate the bundled demo models esdnet/weights/demo_{snn,ann}_small.pth, their curves and demo_results.json.
# CPU only, one thread per run, SNN and ANN trained at the same time (about 50 minutes on 2 cores).
# Usage: benchmarks/train_demo_models.sh [WORKDIR]   (WORKDIR defaults to /tmp/snn-energy-demo; kept outside the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/snn-energy-demo}
BIN=${BIN:-.venv/bin}
EPOCHS=${EPOCHS:-60}
export OMP_NUM_THREADS=1 CUDA_VISIBLE_DEVICES=""

[ -d "$WORK/synth-light" ] || "$BIN/snn-energy" data synth --out "$WORK/synth-light" --preset light
for arch in snn ann; do
  "$BIN/snn-energy" train --arch "$arch" --preset small --data "$WORK/synth-light" --epochs "$EPOCHS" \
    --flips --cache --no-progress --out "$WORK/$arch-small" > "$WORK/$arch-small.log" 2>&1 &
done
wait
"$BIN/python" benchmarks/export_demo_models.py --runs "$WORK" --data "$WORK/synth-light" \
  --real ../shared/data/rain100l-sample
