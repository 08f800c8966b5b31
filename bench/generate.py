"""Generation benchmark: `peftctl eval`'s batched decoding against one example at a time.

Both paths answer the same prompts (training's `prompt_ids` of the first N assistant turns of
data/samples/extes-sample.json, as training's samples pick them) with the same model and greedy
decoding up to the tokenizer's EOS:
- batched: generate.py's `generate_batch` (left-padded batches of --batch-size with an attention
  mask and a key/value cache, the `python -m peftshim generate` path);
- one by one: train.py's `generate_samples` (training's eval.generate samples: one prompt per
  model.generate call, also with a key/value cache).
The model is a randomly initialised built-in LLaMA (nothing is trained; speed does not depend on the
weights) with the built-in tokenizer trained on the sample data. The two paths are interleaved: before
each batch's first prompt reaches model.generate in `generate_samples`, the whole batch is generated
by `generate_batch`, so both see the same load on a shared machine. It prints the real generated
tokens/s of each (tokens up to, not counting, EOS), the ratio, and how many responses are identical
(greedy, so left-padded batches should equal one by one; in bf16 on a GPU a near-tie can flip).
It is a benchmark, not a test.

    .venv/bin/python bench/generate.py                        # CPU: tiny-llama, fp32, < 60 s
    python bench/generate.py --device cuda                    # GPU: llama-7b-shape, bf16
    python bench/generate.py --prompts 64 --batch-size 32 --max-new-tokens 64

bench/gpu_check.sh runs it on a lent GPU machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from peftshim.dialogues import read_dialogues  # noqa: E402
from peftshim.examples import prompt_ids, training_text  # noqa: E402
from peftshim.generate import generate_batch, prompt_budget  # noqa: E402
from peftshim.model import LLAMA_7B_SHAPE, TINY_LLAMA, build_builtin_model, builtin_tokenizer, resolve_dtype  # noqa: E402
from peftshim.spec import GenerateSpec  # noqa: E402
from peftshim.train import generate_samples, generation_prompts  # noqa: E402

DATA = ROOT / "data" / "samples" / "extes-sample.json"


def greedy(max_new_tokens: int, prompts: int, batch_size: int) -> GenerateSpec:
    """eval.generate's greedy settings with nothing that generate_samples does not also do."""
    return GenerateSpec(max_new_tokens=max_new_tokens, samples=prompts, do_sample=False, temperature=1.0, top_p=1.0,
                        top_k=50, num_beams=1, min_new_tokens=0, no_repeat_ngram_size=0, repetition_penalty=1.0,
                        seed=0, batch_size=batch_size)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class OneByOne:
    """The model as generate_samples sees it: times each model.generate call and counts its tokens.

    `before(i)` runs (untimed here) before the i-th call: the batched path's turn.
    """

    def __init__(self, model: Any, eos_id: int, device: torch.device, before: Callable[[int], None]) -> None:
        self.model, self.eos_id, self.device, self.before = model, eos_id, device, before
        self.calls, self.seconds, self.tokens = 0, [], []

    def eval(self) -> Any:
        return self.model.eval()

    def train(self, mode: bool = True) -> Any:
        return self.model.train(mode)

    def generate(self, *, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.before(self.calls)
        sync(self.device)
        start = time.perf_counter()
        out = self.model.generate(input_ids=input_ids, **kwargs)
        sync(self.device)
        self.seconds.append(time.perf_counter() - start)
        row = out[0, input_ids.shape[1]:].tolist()
        self.tokens.append(row.index(self.eos_id) if self.eos_id in row else len(row))
        self.calls += 1
        return out


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default=None, choices=[TINY_LLAMA, LLAMA_7B_SHAPE],
                        help="default: llama-7b-shape on cuda, tiny-llama on the CPU")
    parser.add_argument("--prompts", type=int, default=None, help="prompts (default 32)")
    parser.add_argument("--batch-size", type=int, default=None, help="batched path's batch (default 16 cuda, 8 CPU)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 32")
    parser.add_argument("--max-length", type=int, default=1024,
                        help="data.max_length: prompts get max_length - max_new_tokens tokens (default 1024)")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU intra-op threads (default 1, as the shim's tests run: on a shared machine more "
                             "threads spin against the other load and time the machine, not the decoding)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not cuda:
        raise SystemExit("--device cuda: no CUDA device")
    on_gpu = args.device == "cuda"
    model_name = args.model or (LLAMA_7B_SHAPE if on_gpu else TINY_LLAMA)
    if model_name == LLAMA_7B_SHAPE and not on_gpu:
        raise SystemExit("builtin:llama-7b-shape needs a GPU (27 GB of fp32 weights on the CPU); use builtin:tiny-llama")
    prompts_n = args.prompts or 32
    batch_size = args.batch_size or (16 if on_gpu else 8)
    settings = greedy(args.max_new_tokens or 32, prompts_n, batch_size)

    device = torch.device("cuda:0" if on_gpu else "cpu")
    if not on_gpu:
        torch.set_num_threads(args.threads or 1)
    dtype = resolve_dtype("auto", device)
    dialogues, _ = read_dialogues("extes", DATA)
    cache = Path(tempfile.mkdtemp(prefix="peftshim-bench-"))
    try:
        tokenizer = builtin_tokenizer(lambda: training_text(dialogues), cache_dir=cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    model = build_builtin_model(model_name, tokenizer, device=device, dtype=dtype, attn=args.attn)
    model.eval()
    # What generate_samples reads of a job spec: eval.generate, data.max_length and data.strategy.
    spec: Any = SimpleNamespace(eval=SimpleNamespace(generate=settings),
                                data=SimpleNamespace(max_length=args.max_length, strategy="inline"))
    pairs = generation_prompts(dialogues, prompts_n)
    if len(pairs) < prompts_n:
        raise SystemExit(f"{DATA} has {len(pairs)} prompts; lower --prompts")
    prompts = [prompt_ids(context, tokenizer, max_length=prompt_budget(spec), strategy="inline") for context, _ in pairs]
    lengths = [len(p) for p in prompts]
    print(json.dumps({"device": torch.cuda.get_device_name(device) if on_gpu else "cpu", "model": model_name,
                      "params": sum(p.numel() for p in model.parameters()), "dtype": str(dtype).removeprefix("torch."),
                      "attn": args.attn, "prompts": prompts_n, "batch_size": batch_size,
                      "max_new_tokens": settings.max_new_tokens, "prompt_tokens_mean": round(statistics.mean(lengths)),
                      "prompt_tokens_max": max(lengths), "threads": torch.get_num_threads(),
                      "versions": {"torch": torch.__version__}}), flush=True)

    # Warm-up, untimed: one batch and one single prompt.
    generate_batch(model, tokenizer, prompts[:batch_size], settings, device=device, seed=0)
    generate_batch(model, tokenizer, prompts[:1], settings, device=device, seed=0)

    batched_texts: list[str] = []
    batched_seconds: list[float] = []
    batched_tokens: list[int] = []

    def batched_turn(i: int) -> None:
        if i % batch_size:
            return
        chunk = prompts[i : i + batch_size]
        sync(device)
        start = time.perf_counter()
        texts, tokens = generate_batch(model, tokenizer, chunk, settings, device=device, seed=settings.seed + i)
        sync(device)
        batched_seconds.append(time.perf_counter() - start)
        batched_tokens.append(tokens)
        batched_texts.extend(texts)

    single = OneByOne(model, tokenizer.eos_token_id, device, batched_turn)
    samples = generate_samples(single, tokenizer, spec, dialogues, device=device)
    single_texts = [s["response"] for s in samples]

    rates = {}
    for name, seconds, tokens, texts in (("batched (generate.py generate_batch)", batched_seconds, batched_tokens,
                                          batched_texts),
                                         ("one by one (train.py generate_samples)", single.seconds, single.tokens,
                                          single_texts)):
        rates[name] = sum(tokens) / sum(seconds)
        print(json.dumps({"path": name, "responses": len(texts), "generated_tokens": sum(tokens),
                          "seconds": round(sum(seconds), 2), "generated_tokens_per_s": round(rates[name], 1)}),
              flush=True)
    # Per batch: the batch's time against its prompts' one-by-one times (robust to load spikes).
    per_batch = [sum(single.seconds[k * batch_size : (k + 1) * batch_size]) / s for k, s in enumerate(batched_seconds)]
    identical = sum(a == b for a, b in zip(batched_texts, single_texts))
    batched_rate, single_rate = rates.values()
    print(json.dumps({"speedup_batched_over_one_by_one": round(batched_rate / single_rate, 2),
                      "median_per_batch_time_ratio": round(statistics.median(per_batch), 2),
                      "identical_responses": identical, "of": len(single_texts),
                      "same_token_counts": batched_tokens == [sum(single.tokens[k * batch_size : (k + 1) * batch_size])
                                                              for k in range(len(batched_tokens))]}), flush=True)
    if identical < len(single_texts):
        k = next(k for k, (a, b) in enumerate(zip(batched_texts, single_texts)) if a != b)
        print(json.dumps({"first_difference": k, "batched": batched_texts[k], "one_by_one": single_texts[k]}))


if __name__ == "__main__":
    main()
