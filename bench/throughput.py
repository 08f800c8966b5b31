"""Throughput benchmark: the shim's training step against HF Trainer with DataCollatorWithFlattening.

The baseline is what a user would pick today for padding-free training with transformers: `Trainer`
(use_cache=False) with `DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)`,
which puts a step's examples into one row with restarting position_ids; transformers 5 then builds a
block-diagonal causal mask from those position_ids (masking_utils.find_packed_sequence_indices, only
without a 2D mask and without a cache), so the examples are isolated as the shim's are. The script
checks that isolation before timing (max |packed - alone| of one example's logits).

Both paths train, for each model size, the same examples (examples.Example: random tokens with
ExTES-like lengths, mean ~300, sd 150, the last quarter of each supervised) in the same steps: the
shim packs them into rows (packing.make_batches, `--micro-batch` rows of at most `--max-length`)
and the Trainer gets exactly the examples of each of those micro-batches as one step. Both start from
the same random weights with the same LoRA (r=8, alpha 16, q_proj and v_proj; peft_config, then
peft's get_peft_model), AdamW at lr 1e-4 without weight decay (fused on CUDA), a linear schedule,
grad clipping at 1.0, the same dtype (bf16 on CUDA, fp32 on the CPU) and sdpa attention:
- shim: the step of train.py: packing.collate (an explicit block-diagonal mask), loss.target_loss
  (logits only where a label follows), backward, clip, optimizer, scheduler;
- trainer: Trainer.train()'s own loop, one optimizer step per turn (bench/trainer_steps.py), so its
  steps interleave with the shim's;
- padded (`--baselines trainer,padded`; the GPU default adds it): a plain loop padding each
  micro-batch of `--micro-batch` examples to its longest (DataCollatorForSeq2Seq), the baseline of
  the reference GPU measurements in docs/benchmarks.md.

Tokens/s: "real" counts every input token that is not padding, "labelled" the tokens the loss scores.
Shim and Trainer train the same examples per step, so their ratio is the same under either. On a
shared CPU the paths run interleaved (A B A B, one step each); each ratio is total tokens over total
time, and the median of the per-step time ratios (step i of both holds the same examples) is printed
beside it as the figure robust to load spikes. `--phases` (default on the CPU) splits each step with
hooks (bench/step_phases.py: input, body forward, head forward, loss, head backward, body backward,
clip, optimizer, other); on CUDA it synchronises at each mark, which slows the step, so it is off
there unless asked for. docs/benchmarks.md has the figures and what they say. A benchmark, not a test.

    PYTHONPATH=python .venv/bin/python bench/throughput.py                   # CPU: 4m:2048, 25m:2048, 25m:32000
    PYTHONPATH=python .venv/bin/python bench/throughput.py --models 110m:32000 --steps 6
    PYTHONPATH=python python bench/throughput.py                             # GPU: 7b:32000, 8 x 1024
    PYTHONPATH=python python bench/throughput.py --only shim --attn flex_attention --compile --warmup 4

bench/gpu_check.sh runs these and the CUDA tests in one go on a lent GPU machine.
"""

from __future__ import annotations

import argparse
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
from typing import Any, Callable, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from peft import get_peft_model  # noqa: E402
from transformers import (  # noqa: E402
    DataCollatorForSeq2Seq,
    DataCollatorWithFlattening,
    LlamaConfig,
    LlamaForCausalLM,
    PrinterCallback,
    Trainer,
    TrainingArguments,
    get_scheduler,
)

from peftshim.contract import IGNORE_INDEX  # noqa: E402
from peftshim.examples import Example  # noqa: E402
from peftshim.loss import target_loss  # noqa: E402
from peftshim.methods import apply_method, count_parameters, peft_config  # noqa: E402
from peftshim.model import LLAMA_7B_SHAPE, TINY_LLAMA, builtin_config, builtin_tokenizer, compile_decoder_layers  # noqa: E402
from peftshim.packing import Batch, collate, make_batches  # noqa: E402
from peftshim.spec import LoraMethod  # noqa: E402
from step_phases import PHASES, PhaseClock  # noqa: E402  (bench/, beside this script)
from trainer_steps import TrainerSteps  # noqa: E402

LORA = LoraMethod(r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"], use_dora=False, use_rslora=False,
                  bias="none")
LR = 1e-4
MAX_GRAD_NORM = 1.0
PAD_ID = 0
WEIGHT_SEED = 0
# dense bf16 datasheet peaks (the MFU reference of docs/benchmarks.md)
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}

# Model bodies by name; the vocabulary is chosen per run (`--models size:vocab`). 4m and 7b are the
# built-in models' shapes (model.builtin_config); 25m and 110m are llama2.c's stories42M and
# stories110M bodies (25M and 85M parameters without the embeddings), sizes between the two.
BODIES: dict[str, dict[str, int] | str] = {
    "4m": TINY_LLAMA,
    "25m": dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8),
    "110m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=12),
    "7b": LLAMA_7B_SHAPE,
}


def model_config(body: str, vocab: int, *, attn: str) -> LlamaConfig:
    shape = BODIES[body]
    if isinstance(shape, str):
        config = builtin_config(shape, vocab, attn=attn)
        config.vocab_size = vocab  # the 7B shape fixes 32000; a smaller vocabulary is allowed here
    else:
        config = LlamaConfig(vocab_size=vocab, max_position_embeddings=2048, **shape, attn_implementation=attn,
                             tie_word_embeddings=False)
    config.pad_token_id = PAD_ID
    return config


def build_model(config: LlamaConfig, *, device: torch.device, dtype: torch.dtype) -> LlamaForCausalLM:
    """Seeded random weights created on the device in the dtype (as model.build_builtin_model does; that
    one takes a tokenizer and only the built-in shapes, this benchmark wants other sizes and vocabularies)."""
    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(WEIGHT_SEED)
        try:
            torch.set_default_dtype(dtype)
            with torch.device(device):
                return LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(previous)


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


def labelled(example: Example) -> int:
    """Tokens the loss scores: labels after the first (both paths ignore each example's first label)."""
    return sum(1 for label in example.labels[1:] if label != IGNORE_INDEX)


# --- timing -------------------------------------------------------------------------------------


@dataclass
class Step:
    real_tokens: int
    labelled_tokens: int
    positions: int  # token positions computed, padding included
    run: Callable[[], None]


@dataclass
class TrainPath:
    name: str
    steps: Iterator[Step]
    clock: PhaseClock | None = None
    close: Callable[[], None] = lambda: None
    isolation: float | None = None  # the Trainer's check of its flattened examples


@dataclass
class Timing:
    name: str
    real_tokens: int = 0
    labelled_tokens: int = 0
    positions: int = 0
    seconds: float = 0.0
    step_seconds: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    peak_bytes: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds

    @property
    def labelled_per_s(self) -> float:
        return self.labelled_tokens / self.seconds

    @property
    def pad_fraction(self) -> float:
        return 1 - self.real_tokens / self.positions

    def phase_medians_ms(self) -> dict[str, float]:
        return {phase: 1000 * statistics.median(step[phase] for step in self.phases) for phase in PHASES}


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


def run_timed(paths: list[TrainPath], device: torch.device, warmup: int) -> dict[str, Timing]:
    """Runs the paths' steps in turns, timing each step; the first `warmup` of each are not timed.

    Turns (one step of each path) put the paths under the same conditions when the machine is
    shared, and every other turn runs them in the reverse order (A B B A A B ...): a path's step was
    measured faster when it came second (docs/benchmarks.md: 1.00x one way round, 1.18x the other), and
    alternating cancels that. With one path it is a plain loop. Peak memory covers all the paths.
    """
    timings = {path.name: Timing(path.name) for path in paths}
    seen = {path.name: 0 for path in paths}
    reset_peak_memory(device)
    active = list(paths)
    try:
        while active:
            for path in list(active):
                step = next(path.steps, None)
                if step is None:
                    active.remove(path)
                    continue
                sync(device)
                start = time.perf_counter()
                if path.clock:
                    path.clock.begin(start)
                step.run()
                sync(device)
                end = time.perf_counter()
                if path.clock:
                    path.clock.end(end)
                seen[path.name] += 1
                if seen[path.name] > warmup:
                    timing = timings[path.name]
                    timing.real_tokens += step.real_tokens
                    timing.labelled_tokens += step.labelled_tokens
                    timing.positions += step.positions
                    timing.seconds += end - start
                    timing.step_seconds.append(end - start)
                    if path.clock:
                        timing.phases.append(path.clock.steps[-1])
            active.reverse()
    finally:
        for path in paths:
            path.close()
            if path.clock:
                path.clock.close()
    peak = peak_memory(device)
    for name, timing in timings.items():
        if not timing.step_seconds:
            raise SystemExit(f"{name}: fewer than {warmup + 1} steps; raise --steps or lower --warmup")
        timing.peak_bytes = peak
    return timings


# --- the paths ----------------------------------------------------------------------------------


def make_optimizer(model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=LR, weight_decay=0.0, fused=device.type == "cuda" or None)


def shim_path(base: LlamaForCausalLM, batches: list[Batch], args: argparse.Namespace, device: torch.device,
              dtype: torch.dtype) -> TrainPath:
    model = apply_method(base, LORA, gradient_checkpointing=False)
    if args.compile:
        compile_decoder_layers(model)
    model.train()
    clock = PhaseClock(model, synchronize=device.type == "cuda") if args.phases else None
    optimizer = make_optimizer(model, device)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=len(batches))
    params = [p for p in model.parameters() if p.requires_grad]

    def mark(name: str) -> None:
        if clock:
            clock.mark(name)

    def steps() -> Iterator[Step]:
        for batch in batches:
            def run(batch: Batch = batch) -> None:  # the step of train.py, without accumulation
                inputs = collate(batch, attn_implementation=args.attn, device=device, dtype=dtype)
                target_loss(model, inputs, num_items=batch.target_tokens).backward()
                torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
                mark("optimizer start")
                optimizer.step()
                mark("optimizer end")
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            yield Step(batch.real_tokens, batch.target_tokens, batch.total_tokens, run)

    return TrainPath(shim_name(args), steps(), clock)


def shim_name(args: argparse.Namespace) -> str:
    return "shim" + (" (compiled)" if args.compile else "")


def trainer_path(base: LlamaForCausalLM, examples: list[Example], step_examples: list[list[int]],
                 args: argparse.Namespace, device: torch.device, output_dir: Path) -> TrainPath:
    model = get_peft_model(base, peft_config(base, LORA))
    flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)
    isolation = flattened_isolation_error(model, flatten, examples[:2], device)
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    # One dataset item per optimizer step (the examples of the shim's micro-batch), so both paths train
    # the same examples in each step; the collator is transformers' flattening of those examples.
    steps_dataset = [[features[i] for i in step] for step in step_examples]
    training_args = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=1, max_steps=len(steps_dataset),
        learning_rate=LR, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, max_grad_norm=MAX_GRAD_NORM,
        optim="adamw_torch_fused" if device.type == "cuda" else "adamw_torch", train_sampling_strategy="sequential",
        logging_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        remove_unused_columns=False, use_cpu=device.type != "cuda", seed=0,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=steps_dataset,  # type: ignore[arg-type]
                      data_collator=lambda items: flatten(items[0]))
    trainer.remove_callback(PrinterCallback)  # its end-of-training summary would interrupt the benchmark's lines
    clock = PhaseClock(model, synchronize=device.type == "cuda") if args.phases else None
    handoff = TrainerSteps(trainer, clock)

    def steps() -> Iterator[Step]:
        for step in step_examples:
            chosen = [examples[i] for i in step]
            real = sum(len(e.input_ids) for e in chosen)
            yield Step(real, sum(labelled(e) for e in chosen), real, handoff.step)

    return TrainPath("trainer (flattened)", steps(), clock, handoff.close, isolation)


@torch.no_grad()
def flattened_isolation_error(model: torch.nn.Module, collator: DataCollatorWithFlattening, pair: list[Example],
                              device: torch.device) -> float:
    """max |logits of pair[1] flattened after pair[0] - logits of pair[1] alone| (use_cache=False, as in Trainer)."""
    flat = collator([{"input_ids": e.input_ids, "labels": e.labels} for e in pair])
    both = model(input_ids=flat["input_ids"].to(device), position_ids=flat["position_ids"].to(device),
                 use_cache=False).logits[0, len(pair[0].input_ids):]
    alone = model(input_ids=torch.tensor([pair[1].input_ids], device=device), use_cache=False).logits[0]
    return float((both.float() - alone.float()).abs().max())


def padded_path(base: LlamaForCausalLM, tokenizer: Any, examples: list[Example], args: argparse.Namespace,
                device: torch.device) -> TrainPath:
    model = get_peft_model(base, peft_config(base, LORA))
    model.train()
    clock = PhaseClock(model, synchronize=device.type == "cuda") if args.phases else None
    optimizer = make_optimizer(model, device)
    total = args.warmup + args.steps
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=total)
    params = [p for p in model.parameters() if p.requires_grad]
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    chunks = [order[i : i + args.micro_batch] for i in range(0, len(order), args.micro_batch)][:total]

    def mark(name: str) -> None:
        if clock:
            clock.mark(name)

    def steps() -> Iterator[Step]:
        for chunk in chunks:
            chosen = [examples[i] for i in chunk]
            features = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
                        for e in chosen]
            real = sum(len(e.input_ids) for e in chosen)

            def run(features: list[dict[str, list[int]]] = features) -> None:
                batch = {k: v.to(device) for k, v in collator(features).items()}
                model(**batch, use_cache=False).loss.backward()
                torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
                mark("optimizer start")
                optimizer.step()
                mark("optimizer end")
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            width = max(len(e.input_ids) for e in chosen)
            yield Step(real, sum(labelled(e) for e in chosen), width * len(chosen), run)

    return TrainPath("padded (per micro-batch)", steps(), clock)


# --- one model size ------------------------------------------------------------------------------


@dataclass
class SizeResult:
    body: str
    vocab: int
    params: int
    timings: dict[str, Timing]
    isolation: float | None


def run_size(body: str, vocab: int, args: argparse.Namespace, device: torch.device, dtype: torch.dtype,
             tokenizer: Any, work: Path) -> SizeResult:
    config = model_config(body, vocab, attn=args.attn)
    total = args.warmup + args.steps
    # Packed from a pool of examples as an epoch is: best-fit decreasing fills rows from the whole
    # pool, and a pool of only the steps' examples leaves more padding than training has (measured at
    # 512 x 2: 12.7% from 100 examples, 4.5% from 4,000). The steps train the first batches' examples.
    examples = dialogue_like_examples(max(args.pool, total * args.micro_batch * max(2, args.max_length // 100)),
                                      max_length=args.max_length, vocab=vocab, seed=1)
    batches = make_batches(examples, max_length=args.max_length, micro_batch_size=args.micro_batch, packing=True,
                           pad_id=PAD_ID, seed=0, epoch=0)[:total]
    index = {id(e): i for i, e in enumerate(examples)}
    step_examples = [[index[id(e)] for row in batch.rows for e in row] for batch in batches]

    def base() -> LlamaForCausalLM:  # the same random weights for every path
        return build_model(config, device=device, dtype=dtype)

    makers: dict[str, Callable[[], TrainPath]] = {}
    if args.only in ("all", "shim"):
        makers["shim"] = lambda: shim_path(base(), batches, args, device, dtype)
    if args.only in ("all", "trainer") and "trainer" in args.baselines:
        makers["trainer"] = lambda: trainer_path(base(), examples, step_examples, args, device, work / f"{body}-{vocab}")
    if args.only in ("all", "padded") and "padded" in args.baselines:
        makers["padded"] = lambda: padded_path(base(), tokenizer, examples, args, device)
    with torch.device("meta"):  # counted without weights
        params = count_parameters(LlamaForCausalLM(config))[1]

    timings: dict[str, Timing] = {}
    isolation = None
    if device.type == "cuda":  # one 7B model at a time: the paths one after the other
        for make in makers.values():
            path = make()
            isolation = path.isolation if path.isolation is not None else isolation
            timings |= run_timed([path], device, args.warmup)
            del path
            release(device)
    else:  # a shared CPU: interleave the steps so that every path sees the same load
        paths = [make() for make in makers.values()]
        isolation = next((p.isolation for p in paths if p.isolation is not None), None)
        timings = run_timed(paths, device, args.warmup)
        del paths
        release(device)
    return SizeResult(body, vocab, params, timings, isolation)


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --- output -------------------------------------------------------------------------------------


def mfu(timing: Timing, config: LlamaConfig, params: int, max_length: int, device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a"
    name = torch.cuda.get_device_name(device)
    peak = next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)
    if peak is None:
        return f"n/a ({name}: peak unknown)"
    flops_per_token = 4 * params + 6 * config.num_hidden_layers * max_length * config.hidden_size
    return f"{timing.tokens_per_s * flops_per_token / peak:.3f}"


def paired_ratio(slow: Timing, fast: Timing) -> float:
    """Median over steps of slow's step time / fast's (step i of both trained the same examples)."""
    return statistics.median(s / f for s, f in zip(slow.step_seconds, fast.step_seconds))


def print_results(results: list[SizeResult], args: argparse.Namespace) -> None:
    shim = shim_name(args)
    print("\nreal tokens/s (labelled tokens/s); ratio = shim over the baseline, total tokens over total time;"
          " paired = median over steps of the baseline's step time over the shim's (same examples)")
    header = "| model | vocab | params | path | real tok/s | labelled tok/s | ratio | paired |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for result in results:
        for name, timing in result.timings.items():
            ratio = paired = "-"
            if name != shim and shim in result.timings:
                ratio = f"{result.timings[shim].tokens_per_s / timing.tokens_per_s:.2f}x"
                if name.startswith("trainer"):
                    paired = f"{paired_ratio(timing, result.timings[shim]):.2f}x"
            print(f"| {result.body} | {result.vocab} | {result.params / 1e6:.1f}M | {name} | {timing.tokens_per_s:,.0f} "
                  f"| {timing.labelled_per_s:,.0f} | {ratio} | {paired} |")
    if not args.phases:
        return
    print("\nphases: median ms per step (the total is the median step, not the sum of the medians)")
    header = "| model | vocab | path | " + " | ".join(PHASES) + " | total |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for result in results:
        for name, timing in result.timings.items():
            medians = timing.phase_medians_ms()
            cells = " | ".join(f"{medians[phase]:.0f}" for phase in PHASES)
            print(f"| {result.body} | {result.vocab} | {name} | {cells} | {1000 * statistics.median(timing.step_seconds):.0f} |")


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="7b:32000" if cuda else "4m:2048,25m:2048,25m:32000",
                        help=f"comma-separated body:vocab, body one of {', '.join(BODIES)}")
    parser.add_argument("--steps", type=int, default=24 if cuda else 6, help="timed optimizer steps of each path")
    parser.add_argument("--pool", type=int, default=2000, help="examples packed into rows (an epoch's worth)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps of each path (more with --compile)")
    parser.add_argument("--max-length", type=int, default=1024 if cuda else 512)
    parser.add_argument("--micro-batch", type=int, default=8 if cuda else 2,
                        help="the shim's packed rows per step (the Trainer gets their examples)")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flex_attention"],
                        help="attention of every path (the Trainer's isolation from position_ids is checked)")
    parser.add_argument("--compile", action="store_true", help="compile the shim's decoder layers (train.compile)")
    parser.add_argument("--baselines", default="trainer,padded" if cuda else "trainer",
                        help="comma-separated: trainer (Trainer + DataCollatorWithFlattening), padded (a padded loop)")
    parser.add_argument("--only", default="all", choices=["all", "shim", "trainer", "padded"], help="run one path alone")
    parser.add_argument("--phases", action=argparse.BooleanOptionalAction, default=not cuda,
                        help="split each step into phases (synchronises at each mark on CUDA)")
    args = parser.parse_args(argv)
    args.baselines = {name.strip() for name in args.baselines.split(",") if name.strip()}
    if unknown := args.baselines - {"trainer", "padded"}:
        raise SystemExit(f"--baselines: unknown {sorted(unknown)}; expected trainer and/or padded")
    sizes = []
    for item in args.models.split(","):
        body, _, vocab = item.strip().partition(":")
        if body not in BODIES or not vocab.isdigit() or int(vocab) < 8:
            raise SystemExit(f"--models: {item!r} is not body:vocab with body one of {', '.join(BODIES)}")
        if body == "7b" and not cuda:
            raise SystemExit("the 7b body needs a GPU (27 GB of fp32 weights on the CPU)")
        sizes.append((body, int(vocab)))
    if args.attn == "flex_attention" and not cuda:
        raise SystemExit("flex_attention cannot train on the CPU (no backward there); use sdpa or eager")

    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    work = Path(tempfile.mkdtemp(prefix="peftshim-bench-"))
    try:
        # only the padded baseline needs a tokenizer (DataCollatorForSeq2Seq pads with it)
        tokenizer = builtin_tokenizer(None, cache_dir=work) if "padded" in args.baselines else None
        print(json.dumps({"device": torch.cuda.get_device_name(device) if cuda else "cpu", "dtype": str(dtype).removeprefix("torch."),
                          "attn": args.attn, "max_length": args.max_length, "micro_batch_rows": args.micro_batch,
                          "steps": args.steps, "warmup": args.warmup, "threads": torch.get_num_threads(),
                          "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                                       "peft": __import__("peft").__version__}}), flush=True)
        results = []
        for body, vocab in sizes:
            result = run_size(body, vocab, args, device, dtype, tokenizer, work)
            results.append(result)
            config = model_config(body, vocab, attn=args.attn)
            for timing in result.timings.values():
                print(json.dumps({
                    "model": body, "vocab": vocab, "params": result.params, "path": timing.name,
                    "timed_steps": len(timing.step_seconds), "real_tokens": timing.real_tokens,
                    "labelled_tokens": timing.labelled_tokens, "seconds": round(timing.seconds, 2),
                    "real_tokens_per_s": round(timing.tokens_per_s), "labelled_tokens_per_s": round(timing.labelled_per_s),
                    "pad_fraction": round(timing.pad_fraction, 3),
                    ("peak_gpu_gib" if cuda else "peak_rss_gib_all_paths"): round(timing.peak_bytes / 2**30, 2),
                    "mfu": mfu(timing, config, result.params, args.max_length, device),
                    **({"isolation_max_abs_diff": result.isolation} if timing.name.startswith("trainer") else {}),
                }), flush=True)
        print_results(results, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
