#!/usr/bin/env bash
# Every check of the shim that needs a GPU, in one pass sized for a 15-minute device lease (at most
# 9 minutes here). Run it from the repository root on the GPU host (python3 with torch, transformers,
# peft; no Node.js needed):
#
#     bash bench/gpu_check.sh            # results in $OUT (or /tmp/peftctl-gpu-check)
#
# 1. the shim's tests on CUDA: packing isolation incl. flex_attention, target-only loss, compiled
#    layers, and the smoke training of every method in bf16 with fused AdamW (PEFTSHIM_TEST_GPUS=1);
# 2. bench/throughput.py on builtin:llama-7b-shape, LoRA r=8 q,v, 8 x 1024: shim (sdpa) against HF Trainer
#    with DataCollatorWithFlattening and the padded baseline (real tokens/s, ratios, peak GiB, MFU);
# 3. bench/generate.py on builtin:llama-7b-shape, bf16: `peftctl eval`'s left-padded batches (16) against
#    training's one-prompt-at-a-time samples, 32 prompts x 32 new tokens (generated tokens/s, ratio,
#    identical responses);
# 4. the shim alone with compiled decoder layers (train.compile), sdpa, then flex_attention.
# Steps run in that order of priority, each within its own limit and what is left of 9 minutes; a
# step that fails or times out does not stop the next.
set -uo pipefail
out=${OUT:-/tmp/peftctl-gpu-check}
python=${PEFTCTL_PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

budget=540
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget - SECONDS))
  if ((left < 60)); then
    echo "$name: skipped, ${left} s of the budget left" | tee -a "$out/summary.txt"
    return
  fi
  ((limit > left)) && limit=$left
  local start=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$out/summary.txt"
  tail -n 8 "$out/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.csv"
"$python" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' | tee -a "$out/gpu.csv"

step pytest-cuda 160 env PEFTSHIM_TEST_GPUS=1 "$python" -m pytest -q -p no:cacheprovider \
  python/tests/test_packing.py python/tests/test_loss.py python/tests/test_compile.py python/tests/test_train.py
# QLoRA: CUDA memory of a 4-bit model vs bf16 and the plan's weight term, then QLoRA steps (figures in the log)
step pytest-qlora 90 "$python" -m pytest -q -s -p no:cacheprovider python/tests/test_quantization.py -k gpu
step throughput-sdpa 220 "$python" bench/throughput.py --attn sdpa
step generate 100 "$python" bench/generate.py --device cuda
step throughput-sdpa-compiled 150 "$python" bench/throughput.py --only shim --attn sdpa --compile --warmup 4
step throughput-flex-compiled 150 "$python" bench/throughput.py --only shim --attn flex_attention --compile --warmup 4
