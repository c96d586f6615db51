#!/usr/bin/env bash
# The paper setting rehearsed on one GPU (no DVC, no network): every stage at the paper's sizes on a
# generated VOC-sized folder (conf/rehearsal/gpu.yaml cuts counts only), bf16 autocast on CUDA, then
# each stage's estimated hours at the paper's counts from its measured seconds per step / per image.
#   bash bench/gpu.sh            (tables also written to $OUT or ./bench-results)
# pydensecrf2 is built from its sdist when missing: put it in .whl/ (pip download --no-binary=:all:
# --no-deps -d .whl pydensecrf2) on a machine without network.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ! python3 -c "import pydensecrf" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/pydensecrf2-*.tar.gz
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
nproc
data=/tmp/bao-rehearsal
rm -rf "$data"
PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} python3 -m scripts.other_voc "$data" --train 48 --val 16 --test 4 --aug 48 \
  --min-side 320 --max-side 500
python3 -m bench.rehearse --rehearsal gpu --folder "$data/VOCdevkit" --work /tmp/bao-rehearsal-work \
  --json "$out/rehearsal.json" 2>&1 | tee "$out/rehearsal.txt"
cp /tmp/bao-rehearsal-work/metrics/table1.md "$out/table1.md"
