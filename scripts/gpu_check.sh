#!/usr/bin/env bash
# The GPU execution paths and their benches in one bounded run, for a GPU node (or the lent
# device machine through ../shared/tools/gpu-kit; docs/deployment.md, "Checking a GPU node").
# Each step has its own time cap inside an overall budget; logs go to $OUT (default ./gpu-check).
# Usage, from the project root with the runtime (onnxruntime-gpu) installed:
#   scripts/gpu_check.sh [BUDGET_SECONDS]        (default 900)
set -u
out=${OUT:-gpu-check}
mkdir -p "$out"
budget=${1:-900}
start=$(date +%s)
py=${PYTHON:-python3}
cli=("$py" -m crossguard.cli)

step() {  # step NAME CAP_SECONDS COMMAND...: run with min(CAP, budget left); log to $out/NAME.log
  local name=$1 cap=$2
  shift 2
  local left=$((budget - ($(date +%s) - start)))
  ((left < cap)) && cap=$left
  if ((cap < 15)); then
    echo "== $name skipped: budget spent" | tee -a "$out/summary.log"
    return
  fi
  echo "== $name (cap ${cap}s)"
  local t0
  t0=$(date +%s)
  timeout -k 5 "$cap" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name rc=$rc in $(($(date +%s) - t0))s" | tee -a "$out/summary.log"
  grep -v '^\[' "$out/$name.log" | tail -n 60
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$py" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"

  nproc
} 2>&1 | tee "$out/device.log"

step bench-text-fp16 240 "${cli[@]}" bench text --precision fp16 --seconds 2 --no-naive \
  --batch-sizes 1,64,256,512
step bench-text-fp32 240 "${cli[@]}" bench text --precision fp32 --seconds 2 --no-naive \
  --batch-sizes 1,64,256,512
step eval-text-fp16 45 "${cli[@]}" eval text --precision fp16
step bench-pipeline 180 "${cli[@]}" bench pipeline --items 3000 --batch-items 256 \
  --agent-concurrency 256
step bench-vision 150 "${cli[@]}" bench vision --seconds 2
echo "total $(($(date +%s) - start))s" | tee -a "$out/summary.log"
