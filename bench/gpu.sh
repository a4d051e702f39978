#!/usr/bin/env bash
# One short, prepared run for a lent GPU (the device tool: `run` with this as its command).
# About 6-8 minutes on an H100/H200, random-init models of the paper's students' shapes
# (no weights travel, no hub): the exam engines (one prompt at a time vs fairspec's
# batched hf; vLLM too where it imports) on Llama2-7B shapes, and one FAIR training step
# three ways (packed, padded, the authors' two forwards) on Qwen2.5-1.5B shapes.
# Prints the measured ratios side by side; writes the logs under $OUT (or ./bench-out).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench-out}"; mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee "$out/device.txt"
echo "== exam: Llama2-7B shapes, bf16, 32 SVAMP prompts, 128 new tokens" | tee "$out/exam.txt"
timeout 330 python bench/exam.py --device cuda --dtype bf16 --random-init llama2-7b \
  --prompts 32 --max-new-tokens 128 --batch-size 32 --engines hf-single hf 2>"$out/exam.log" \
  | tee -a "$out/exam.txt" || echo "exam bench failed or timed out: see exam.log" | tee -a "$out/exam.txt"
echo "== train: Qwen2.5-1.5B shapes, bf16, batch 16, 8 timed steps" | tee "$out/train.txt"
timeout 200 python bench/train.py --device cuda --dtype bf16 --random-init qwen2.5-1.5b \
  --batch-size 16 --steps 8 --warmup 2 --rounds 2 2>"$out/train.log" \
  | tee -a "$out/train.txt" || echo "train bench failed or timed out: see train.log" | tee -a "$out/train.txt"
