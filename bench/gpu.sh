#!/usr/bin/env bash
# One short, prepared run for a lent GPU (the device tool: `run` with this as its command;
# carry .bench-wheels, see below). Under 6 minutes on one H100: fairspec's own train stage
# code (fairspec.training.launch.train, started as the train stage starts it; accelerate
# with FSDP when more than one GPU is visible) on a random-init model of Qwen2.5-1.5B's full
# shape (no weights travel, no hub), bf16 mixed precision and then pure bf16 weights for
# contrast: tokens/s, peak GPU memory beside the memory plan's estimate, and the share of
# weights a few steps at lr 1e-5 changed. Results: $OUT/gpu_train.json (or ./bench-out).
#
#   bench/gpu.sh               # the GPU run
#   bench/gpu.sh --cpu-smoke   # the same script on a tiny model on the CPU (about 20 s)
#   bench/gpu.sh --all         # then the earlier exam-engine and training-step benches too
#                              # (another 6-8 minutes: bench/exam.py, bench/train.py)
#
# The GPU image has torch, transformers, accelerate, peft, tokenizers, pyarrow, pandas but
# not `datasets` (the train path's load_from_disk) nor its dill and multiprocess: their
# wheels are carried in .bench-wheels/ (git-ignored; fetch them with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .bench-wheels \
#     datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
# ) and installed into /tmp, offline, when `datasets` does not import.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
out="${OUT:-bench-out}"; mkdir -p "$out"
py="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1 HF_HUB_OFFLINE=1
if ! "$py" -c "import datasets" 2>/dev/null && ls .bench-wheels/*.whl >/dev/null 2>&1; then
  "$py" -m pip install --quiet --no-deps --no-index --target /tmp/fairspec-bench-site \
    .bench-wheels/*.whl || echo "could not install the carried wheels (Python 3.12 ones)" >&2
  export PYTHONPATH="$PYTHONPATH:/tmp/fairspec-bench-site"
fi
# what fairspec's train path imports, checked before anything is built
"$py" - <<'PY' 2>&1 | tee "$out/imports.txt"
import importlib, sys
missing = []
for name in ("torch", "transformers", "accelerate", "datasets", "tokenizers", "safetensors",
             "fairspec.training.launch", "fairspec.training.trainer", "fairspec.plan.memory"):
    try:
        importlib.import_module(name)
    except Exception as exc:
        missing.append(f"{name}: {type(exc).__name__}: {exc}")
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
if missing:
    sys.exit("fairspec's train path cannot run here; these do not import:\n  " + "\n  ".join(missing))
PY
if [ "$mode" = "--cpu-smoke" ]; then
  OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$py" bench/gpu_train.py --cpu-smoke \
    --precisions mixed,pure --work /tmp/fairspec-gpu-bench-smoke 2>"$out/gpu_train.log" \
    | tee "$out/gpu_train.txt"
  exit 0
fi
echo "== train stage: random-init Qwen2.5-1.5B shape, bf16 mixed then pure, lr 1e-5" \
  | tee "$out/gpu_train.txt"
timeout 330 "$py" bench/gpu_train.py --precisions mixed,pure --timeout 150 \
  2>"$out/gpu_train.log" | tee -a "$out/gpu_train.txt" \
  || echo "train-stage bench failed or timed out: see gpu_train.log" | tee -a "$out/gpu_train.txt"
cp /tmp/fairspec-gpu-bench/launch-*.log "$out/" 2>/dev/null || true
[ "$mode" = "--all" ] || exit 0
echo "== exam: Llama2-7B shapes, bf16, 32 SVAMP prompts, 128 new tokens" | tee "$out/exam.txt"
timeout 330 "$py" bench/exam.py --device cuda --dtype bf16 --random-init llama2-7b \
  --prompts 32 --max-new-tokens 128 --batch-size 32 --engines hf-single hf 2>"$out/exam.log" \
  | tee -a "$out/exam.txt" || echo "exam bench failed or timed out: see exam.log" | tee -a "$out/exam.txt"
echo "== train: Qwen2.5-1.5B shapes, bf16, batch 16, 8 timed steps" | tee "$out/train.txt"
timeout 200 "$py" bench/train.py --device cuda --dtype bf16 --random-init qwen2.5-1.5b \
  --batch-size 16 --steps 8 --warmup 2 --rounds 2 2>"$out/train.log" \
  | tee -a "$out/train.txt" || echo "train bench failed or timed out: see train.log" | tee -a "$out/train.txt"
