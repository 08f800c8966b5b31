"""Throughput benchmark: the shim's training path against a plain transformers + peft script.

Both train the same examples (random tokens with dialogue-like lengths: mean ~300, sd 150, as in the
reference measurements of docs/benchmarks.md) with LoRA r=8 on q_proj, v_proj:
- shim: peftshim's model, method and packing (isolated packed rows, explicit mask) and the same
  step as train.py (logits and loss over the target tokens only, grad clipping, AdamW; fused on
  CUDA); with --compile its decoder layers are compiled as train.compile does;
- baseline: the usual script: get_peft_model + DataCollatorForSeq2Seq padding each micro-batch to
  its longest example, loss averaged by the model.
It prints real (non-pad) tokens/s of each, the ratio, peak memory (torch.cuda.max_memory_allocated
on GPU, peak RSS on CPU) and MFU with 4N + 6*L*s*d FLOPs per token (frozen base; s = max length, as
in the reference measurements; n/a on CPU). It is a benchmark, not a test.

    PYTHONPATH=python .venv/bin/python bench/throughput.py            # CPU: tiny-llama, < 60 s
    PYTHONPATH=python python bench/throughput.py                      # GPU: llama-7b-shape, 8 x 1024
    PYTHONPATH=python python bench/throughput.py --only shim --attn flex_attention --compile --warmup 4

bench/gpu_check.sh runs these and the CUDA tests in one go on a lent GPU machine.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import DataCollatorForSeq2Seq  # noqa: E402

from peftshim.contract import IGNORE_INDEX  # noqa: E402
from peftshim.examples import Example  # noqa: E402
from peftshim.loss import target_loss  # noqa: E402
from peftshim.methods import apply_method, count_parameters  # noqa: E402
from peftshim.model import (  # noqa: E402
    LLAMA_7B_SHAPE,
    TINY_LLAMA,
    build_builtin_model,
    compile_decoder_layers,
    load_base_model,
    resolve_dtype,
)
from peftshim.packing import collate, make_batches  # noqa: E402
from peftshim.spec import LoraMethod, ModelSpec, SpecError  # noqa: E402

LORA = LoraMethod(r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"], use_dora=False, use_rslora=False,
                  bias="none")
# dense bf16 datasheet peaks (the MFU reference of docs/benchmarks.md)
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def dialogue_like_examples(count: int, *, max_length: int, vocab: int, seed: int) -> list[Example]:
    """Random tokens with ExTES-like lengths; the last quarter of each is the supervised target."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        n = int(min(max(rng.gauss(300.0, 150.0), 32), max_length))
        ids = [rng.randrange(3, vocab) for _ in range(n)]
        cut = n - max(1, n // 4)
        examples.append(Example(ids, [IGNORE_INDEX] * cut + ids[cut:]))
    return examples


Step = tuple[int, int, Callable[[], None]]  # (real tokens, token positions, run one optimizer step)


@dataclass
class Timing:
    name: str
    steps: int = 0
    real_tokens: int = 0
    positions: int = 0
    seconds: float = 0.0
    peak_bytes: int = 0
    step_rates: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def median_step_tokens_per_s(self) -> float:
        """Robust to the load spikes of a shared machine, which the total-time figure is not."""
        return statistics.median(self.step_rates)

    @property
    def pad_fraction(self) -> float:
        return 1 - self.real_tokens / self.positions


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: "5" resets the peak RSS (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_timed(paths: dict[str, Iterator[Step]], device: torch.device, warmup: int) -> dict[str, Timing]:
    """Runs the paths' steps round-robin, timing each step; the first `warmup` of each are not timed.

    Round-robin (one step of each path in turn) puts both paths under the same conditions when the
    machine is shared; with one path it is a plain loop. Peak memory covers whatever ran together.
    """
    timings = {name: Timing(name) for name in paths}
    seen = {name: 0 for name in paths}
    reset_peak_memory(device)
    active = dict(paths)
    while active:
        for name, steps in list(active.items()):
            item = next(steps, None)
            if item is None:
                del active[name]
                continue
            real, positions, step = item
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            elapsed = time.perf_counter() - start
            seen[name] += 1
            if seen[name] > warmup:
                timing = timings[name]
                timing.steps += 1
                timing.real_tokens += real
                timing.positions += positions
                timing.seconds += elapsed
                timing.step_rates.append(real / elapsed)
    peak = peak_memory(device)
    for name, timing in timings.items():
        if timing.steps == 0:
            raise SystemExit(f"{name}: fewer than {warmup + 1} steps; raise --steps or lower --warmup")
        timing.peak_bytes = peak
    return timings


def make_optimizer(model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda" or None)


def shim_steps(base: torch.nn.Module, examples: list[Example], args: argparse.Namespace, device: torch.device,
               dtype: torch.dtype, pad_id: int) -> Iterator[Step]:
    model = apply_method(base, LORA, gradient_checkpointing=False)
    if args.compile:
        compile_decoder_layers(model)
    model.train()
    optimizer = make_optimizer(model, device)
    params = [p for p in model.parameters() if p.requires_grad]
    batches = make_batches(examples, max_length=args.max_length, micro_batch_size=args.micro_batch, packing=True,
                           pad_id=pad_id, seed=0, epoch=0)

    def steps() -> Iterator[tuple[int, int, Callable[[], None]]]:
        for batch in batches:
            def step(batch=batch) -> None:  # the step of train.py, without accumulation
                inputs = collate(batch, attn_implementation=args.attn, device=device, dtype=dtype)
                target_loss(model, inputs, num_items=batch.target_tokens).backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            yield batch.real_tokens, batch.total_tokens, step

    return steps()


def baseline_steps(base: torch.nn.Module, tokenizer, examples: list[Example], args: argparse.Namespace,  # type: ignore[no-untyped-def]
                   device: torch.device) -> Iterator[Step]:
    config = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(base, config)
    model.train()
    optimizer = make_optimizer(model, device)
    params = [p for p in model.parameters() if p.requires_grad]
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    chunks = [order[i : i + args.micro_batch] for i in range(0, len(order), args.micro_batch)]

    def steps() -> Iterator[tuple[int, int, Callable[[], None]]]:
        for chunk in chunks:
            features = [{"input_ids": examples[i].input_ids, "attention_mask": [1] * len(examples[i].input_ids),
                         "labels": examples[i].labels} for i in chunk]
            real = sum(len(f["input_ids"]) for f in features)
            width = max(len(f["input_ids"]) for f in features)

            def step(features=features) -> None:
                batch = {k: v.to(device) for k, v in collator(features).items()}
                model(**batch).loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            yield real, width * len(features), step

    return steps()


def mfu(result: Timing, total_params: int, config, max_length: int, device: torch.device) -> str:  # type: ignore[no-untyped-def]
    if device.type != "cuda":
        return "n/a"
    name = torch.cuda.get_device_name(device)
    peak = next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)
    if peak is None:
        return f"n/a ({name}: peak unknown)"
    flops_per_token = 4 * total_params + 6 * config.num_hidden_layers * max_length * config.hidden_size
    return f"{result.tokens_per_s * flops_per_token / peak:.3f}"


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=LLAMA_7B_SHAPE if cuda else TINY_LLAMA, choices=[TINY_LLAMA, LLAMA_7B_SHAPE])
    parser.add_argument("--steps", type=int, default=32 if cuda else 16,
                        help="baseline micro-batches (the shim packs the same examples into fewer); 2 are warm-up")
    parser.add_argument("--max-length", type=int, default=1024 if cuda else 512)
    parser.add_argument("--micro-batch", type=int, default=8 if cuda else 2)
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flex_attention"])
    parser.add_argument("--compile", action="store_true", help="compile the shim's decoder layers (train.compile)")
    parser.add_argument("--only", default="both", choices=["both", "shim", "baseline"], help="which paths to run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps of each path (more with --compile)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if cuda else "cpu")
    dtype = resolve_dtype("auto", device)
    cache = Path(tempfile.mkdtemp(prefix="peftshim-bench-"))  # the built-in tokenizer, trained afresh
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    spec = ModelSpec(base=args.model, revision=None, dtype="auto", attn=args.attn, trust_remote_code=False)
    if args.model == LLAMA_7B_SHAPE and not cuda:
        raise SystemExit("builtin:llama-7b-shape needs a GPU (27 GB of fp32 weights on the CPU); use builtin:tiny-llama")
    try:
        base, tokenizer = load_base_model(spec, device=device, dtype=dtype, tokenizer_texts=None, cache_dir=cache)
    except SpecError as error:
        raise SystemExit(str(error)) from None
    examples = dialogue_like_examples(args.steps * args.micro_batch, max_length=args.max_length,
                                      vocab=len(tokenizer), seed=1)
    total_params = count_parameters(base)[1]
    config = base.config
    print(json.dumps({"device": torch.cuda.get_device_name(device) if cuda else "cpu", "model": args.model,
                      "params": total_params, "dtype": str(dtype).removeprefix("torch."), "attn": args.attn,
                      "examples": len(examples), "mean_length": round(sum(len(e.input_ids) for e in examples) / len(examples)),
                      "max_length": args.max_length, "micro_batch": args.micro_batch, "threads": torch.get_num_threads(),
                      "versions": {"torch": torch.__version__}}), flush=True)

    def second_base() -> torch.nn.Module:  # the same random weights again: both paths start from one model
        return build_builtin_model(args.model, tokenizer, device=device, dtype=dtype, attn=args.attn)

    shim_name = "shim (packed, isolated" + (", compiled)" if args.compile else ")")
    baseline_name = "baseline (padded per micro-batch)"

    def shim_path(model: torch.nn.Module) -> dict[str, Iterator[Step]]:
        return {shim_name: shim_steps(model, examples, args, device, dtype, tokenizer.pad_token_id)}

    def baseline_path(model: torch.nn.Module) -> dict[str, Iterator[Step]]:
        return {baseline_name: baseline_steps(model, tokenizer, examples, args, device)}

    results: dict[str, Timing] = {}
    if args.only == "baseline":
        results = run_timed(baseline_path(base), device, args.warmup)
    elif args.only == "shim":
        results = run_timed(shim_path(base), device, args.warmup)
    elif cuda:  # one 7B model at a time: run the paths one after the other
        results = run_timed(shim_path(base), device, args.warmup)
        del base
        release(device)
        results |= run_timed(baseline_path(second_base()), device, args.warmup)
    else:  # a shared CPU: interleave the steps so both paths see the same load
        results = run_timed(shim_path(base) | baseline_path(second_base()), device, args.warmup)

    peak_key = "peak_gpu_gib" if cuda else "peak_rss_gib_both_paths" if len(results) == 2 else "peak_rss_gib"
    for result in results.values():
        print(json.dumps({"path": result.name, "timed_steps": result.steps, "real_tokens": result.real_tokens,
                          "seconds": round(result.seconds, 2), "real_tokens_per_s": round(result.tokens_per_s),
                          "median_step_real_tokens_per_s": round(result.median_step_tokens_per_s),
                          "pad_fraction": round(result.pad_fraction, 3),
                          peak_key: round(result.peak_bytes / 2**30, 2),
                          "mfu": mfu(result, total_params, config, args.max_length, device)}), flush=True)
    if len(results) == 2:
        shim, baseline = results[shim_name], results[baseline_name]
        print(json.dumps({"speedup_shim_over_baseline": round(shim.tokens_per_s / baseline.tokens_per_s, 2),
                          "speedup_of_median_step_rates": round(shim.median_step_tokens_per_s / baseline.median_step_tokens_per_s, 2)}),
              flush=True)


if __name__ == "__main__":
    main()
