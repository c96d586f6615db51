#!/usr/bin/env bash
# GPU check for one H100 (< 8 minutes, installs included): the training-step and CAM-inference
# benchmarks at the paper's sizes (Conformer-S, 512 crops, batch 8; 256/512/768 inference) on
# synthetic data, then an estimate of the paper run's GPU-hours from the measured throughput.
#   bash bench/gpu.sh            (results also written to $OUT or ./bench-results)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-results}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
python3 -c "import timm" 2>/dev/null || python3 -m pip install -q timm
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 bench/train_step.py --arch conformer_s --crop 512 --batch 8 --device cuda --repeats 10 --json "$out/train_step.json"
python3 bench/cam_inference.py --arch conformer_s --scales 256 512 768 --device cuda --repeats 10 --json "$out/cam_inference.json"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
step = {(r["step"], r["precision"], r["channels_last"]): r["images/s"] for r in json.load(open(f"{out}/train_step.json"))}
cam = json.load(open(f"{out}/cam_inference.json"))
n = 10582  # train_aug
tc = step.get(("transcam-sdpa", "bf16", False)) or step[("transcam-sdpa", "fp32", False)]
bao = step.get(("bao", "bf16", False)) or step[("bao", "fp32", False)]
# one image = its 3 scales x flip: a pair per scale
per_image = sum(1 / r["images/s (pair)"] for r in cam if r["attention"] == "block-by-block")
hours = {"train_transcam (20 epochs)": 20 * n / tc / 3600,
         "train_bao x4 variants (10 epochs)": 4 * 10 * n / bao / 3600,
         "make_cams + make_seeds (train_aug, 3 scales x flip)": 2 * n * per_image / 3600}
for k, v in hours.items():
    print(f"{k:55s} {v:6.2f} GPU-h")
print(f"{'total (DeepLab excluded)':55s} {sum(hours.values()):6.2f} GPU-h")
PY
