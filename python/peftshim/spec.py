"""The job spec (job.json): one run's fully resolved config, written by the controller.

src/plan/jobspec.ts and src/config/schema.ts are the authority on its fields. The controller fills
in every default, so the shim requires every field and keeps no defaults of its own: a missing or
unknown field means a broken or foreign spec, and the error names it (exit 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from peftshim.data import FORMATS, STRATEGY_MODES

JOB_SCHEMA_VERSION = 1


class SpecError(Exception):
    """A bad job spec; the message names the file and the field."""

    def __init__(self, file: str, field_path: str, message: str) -> None:
        self.file = file
        self.field_path = field_path
        self.message = message
        where = f"{file}: {field_path}: " if field_path else f"{file}: "
        super().__init__(where + message)


@dataclass(frozen=True)
class ModelSpec:
    base: str
    revision: str | None
    dtype: str
    attn: str
    trust_remote_code: bool


@dataclass(frozen=True)
class SplitSpec:
    train: float
    valid: float
    test: float
    seed: int


@dataclass(frozen=True)
class DataSpec:
    format: str
    path: str
    strategy: str
    max_length: int
    packing: bool
    max_examples: int | None
    split: SplitSpec


@dataclass(frozen=True)
class TrainSpec:
    epochs: float
    max_steps: int | None
    lr: float
    lr_scheduler: str
    batch_size: int
    micro_batch_size: int
    warmup_steps: int
    weight_decay: float
    max_grad_norm: float
    gradient_checkpointing: bool
    compile: bool
    seed: int
    log_every_steps: int
    gradient_accumulation_steps: int


@dataclass(frozen=True)
class GenerateSpec:
    max_new_tokens: int
    samples: int


@dataclass(frozen=True)
class EvalSpec:
    every_steps: int
    generate: GenerateSpec


@dataclass(frozen=True)
class CheckpointSpec:
    every_steps: int
    keep_last: int
    keep_adapters: str


@dataclass(frozen=True)
class ResourcesSpec:
    executor: str
    gpus: int
    gpu_memory_gb: float
    retries: int


@dataclass(frozen=True)
class JobSpec:
    schema_version: int
    run_id: str
    experiment: str
    run_dir: Path
    sweep_values: dict[str, Any]
    model: ModelSpec
    # methods.apply_method takes the method as a plain dict (keys as in schema.ts).
    method: dict[str, Any]
    data: DataSpec
    train: TrainSpec
    eval: EvalSpec
    checkpoint: CheckpointSpec
    resources: ResourcesSpec
    job_fingerprint: str
    # The shim never talks to the Hub; the section is only checked to be an object.
    hub: dict[str, Any] | None = field(default=None)


# --- value checks -------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (set, bytes)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


class _Section:
    """One JSON object of the spec, read field by field; every error names the dotted path."""

    def __init__(self, file: str, path: str, raw: Any) -> None:
        self.file = file
        self.path = path
        if not isinstance(raw, dict):
            raise SpecError(file, path or "(top level)", f"expected an object, got {_describe(raw)}")
        self.raw = raw
        self.seen: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(self.file, self._where(key), message)

    def _get(self, key: str, optional: bool) -> Any:
        self.seen.add(key)
        if key not in self.raw:
            if optional:
                return None
            raise self.fail(key, "missing (job specs are fully resolved: every field is required)")
        return self.raw[key]

    def _check(self, key: str, optional: bool, ok: Callable[[Any], bool], expected: str) -> Any:
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if not ok(value):
            raise self.fail(key, f"expected {expected}, got {_describe(value)}")
        return value

    def string(self, key: str, *, optional: bool = False, non_empty: bool = True) -> Any:
        expected = "a non-empty string" if non_empty else "a string"
        return self._check(key, optional, lambda v: isinstance(v, str) and (bool(v) or not non_empty), expected)

    def boolean(self, key: str, *, default: bool | None = None) -> bool:
        """`default` is for fields added after job specs were first written (older runs still resume)."""
        value = self._check(key, default is not None, lambda v: isinstance(v, bool), "true or false")
        return default if value is None else value

    def positive_int(self, key: str, *, optional: bool = False) -> Any:
        value = self._check(key, optional, lambda v: _is_int(v) and v > 0, "a positive integer")
        return None if value is None else int(value)

    def non_negative_int(self, key: str) -> int:
        return int(self._check(key, False, lambda v: _is_int(v) and v >= 0, "a non-negative integer"))

    def positive_number(self, key: str) -> float:
        return float(self._check(key, False, lambda v: _is_number(v) and v > 0, "a positive number"))

    def non_negative_number(self, key: str) -> float:
        return float(self._check(key, False, lambda v: _is_number(v) and v >= 0, "a non-negative number"))

    def fraction(self, key: str) -> float:
        return float(self._check(key, False, lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1"))

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        expected = "one of " + ", ".join(options)
        return self._check(key, False, lambda v: v in options, expected)

    def string_list(self, key: str, *, min_items: int) -> list[str]:
        def ok(v: Any) -> bool:
            return isinstance(v, list) and len(v) >= min_items and all(isinstance(s, str) and s for s in v)

        expected = "a list of non-empty strings" + (f" (at least {min_items})" if min_items else "")
        return list(self._check(key, False, ok, expected))

    def section(self, key: str, *, optional: bool = False) -> "_Section | None":
        value = self._get(key, optional)
        if value is None and optional:
            return None
        return _Section(self.file, self._where(key), value)

    def done(self) -> None:
        """Unknown keys are errors, as in schema.ts's strict objects (a typo must not be ignored)."""
        unknown = sorted(set(self.raw) - self.seen)
        if unknown:
            raise self.fail(unknown[0], "unknown field")


# --- sections -----------------------------------------------------------------------------------


def _model(s: _Section) -> ModelSpec:
    spec = ModelSpec(
        base=s.string("base"),
        revision=s.string("revision", optional=True),
        dtype=s.choice("dtype", ("auto", "bfloat16", "float16", "float32")),
        attn=s.choice("attn", ("sdpa", "eager", "flex_attention")),
        trust_remote_code=s.boolean("trust_remote_code"),
    )
    s.done()
    return spec


METHOD_KINDS = ("lora", "adapter", "ia3", "prefix", "prompt", "full")


def _method(s: _Section) -> dict[str, Any]:
    kind = s.choice("kind", METHOD_KINDS)
    method: dict[str, Any] = {"kind": kind}
    if kind == "lora":
        method["r"] = s.positive_int("r")
        method["alpha"] = s.positive_number("alpha")
        method["dropout"] = s.fraction("dropout")
        method["target_modules"] = s.string_list("target_modules", min_items=1)
        method["use_dora"] = s.boolean("use_dora")
        method["use_rslora"] = s.boolean("use_rslora")
        method["bias"] = s.choice("bias", ("none", "all", "lora_only"))
    elif kind == "adapter":
        method["adapter_len"] = s.positive_int("adapter_len")
        method["adapter_layers"] = s.positive_int("adapter_layers")
    elif kind == "ia3":
        method["target_modules"] = s.string_list("target_modules", min_items=1)
        method["feedforward_modules"] = s.string_list("feedforward_modules", min_items=0)
    elif kind in ("prefix", "prompt"):
        method["num_virtual_tokens"] = s.positive_int("num_virtual_tokens")
        if kind == "prompt":
            init_text = s.string("init_text", optional=True, non_empty=False)
            if init_text is not None:
                method["init_text"] = init_text
    s.done()
    return method


def _data(s: _Section) -> DataSpec:
    fmt = s.choice("format", FORMATS)
    path = s.string("path")
    if not Path(path).is_absolute():
        raise s.fail("path", f"expected an absolute path (the controller resolves it), got {_describe(path)}")
    strategy = s.choice("strategy", STRATEGY_MODES)
    max_length = s.positive_int("max_length")
    packing = s.boolean("packing")
    max_examples = s.positive_int("max_examples", optional=True)
    split_section = s.section("split")
    assert split_section is not None
    split = SplitSpec(
        train=split_section.fraction("train"),
        valid=split_section.fraction("valid"),
        test=split_section.fraction("test"),
        seed=split_section.non_negative_int("seed"),
    )
    split_section.done()
    if split.train <= 0:
        raise split_section.fail("train", "expected a fraction above 0 (there must be training data)")
    if split.train + split.valid + split.test > 1 + 1e-9:
        raise split_section.fail("train", "train + valid + test must not exceed 1")
    s.done()
    return DataSpec(fmt, path, strategy, max_length, packing, max_examples, split)


def _train(s: _Section) -> TrainSpec:
    spec = TrainSpec(
        epochs=s.positive_number("epochs"),
        max_steps=s.positive_int("max_steps", optional=True),
        lr=s.positive_number("lr"),
        lr_scheduler=s.choice("lr_scheduler", ("cosine", "linear", "constant")),
        batch_size=s.positive_int("batch_size"),
        micro_batch_size=s.positive_int("micro_batch_size"),
        warmup_steps=s.non_negative_int("warmup_steps"),
        weight_decay=s.non_negative_number("weight_decay"),
        max_grad_norm=s.positive_number("max_grad_norm"),
        gradient_checkpointing=s.boolean("gradient_checkpointing"),
        compile=s.boolean("compile", default=False),
        seed=s.non_negative_int("seed"),
        log_every_steps=s.positive_int("log_every_steps"),
        gradient_accumulation_steps=s.positive_int("gradient_accumulation_steps"),
    )
    s.done()
    return spec


def _eval(s: _Section) -> EvalSpec:
    every_steps = s.positive_int("every_steps")
    gen = s.section("generate")
    assert gen is not None
    generate = GenerateSpec(max_new_tokens=gen.positive_int("max_new_tokens"), samples=gen.non_negative_int("samples"))
    gen.done()
    s.done()
    return EvalSpec(every_steps, generate)


def _checkpoint(s: _Section) -> CheckpointSpec:
    spec = CheckpointSpec(
        every_steps=s.positive_int("every_steps"),
        keep_last=s.positive_int("keep_last"),
        keep_adapters=s.choice("keep_adapters", ("all", "best", "last")),
    )
    s.done()
    return spec


def _resources(s: _Section) -> ResourcesSpec:
    spec = ResourcesSpec(
        executor=s.choice("executor", ("local",)),
        gpus=s.non_negative_int("gpus"),
        gpu_memory_gb=s.positive_number("gpu_memory_gb"),
        retries=s.non_negative_int("retries"),
    )
    s.done()
    return spec


def parse_spec(raw: Any, file: str = "job.json") -> JobSpec:
    """Validates a parsed job.json; raises SpecError naming the first bad field."""
    top = _Section(file, "", raw)
    version = top._check("schema_version", False, lambda v: v == JOB_SCHEMA_VERSION, f"{JOB_SCHEMA_VERSION}")
    run_id = top.string("run_id")
    experiment = top.string("experiment")
    run_dir = top.string("run_dir")
    if not Path(run_dir).is_absolute():
        raise top.fail("run_dir", f"expected an absolute path, got {_describe(run_dir)}")
    sweep_values = top._check("sweep_values", False, lambda v: isinstance(v, dict), "an object")

    sections = {name: top.section(name) for name in ("model", "method", "data", "train", "eval", "checkpoint", "resources")}
    model = _model(sections["model"])  # type: ignore[arg-type]
    method = _method(sections["method"])  # type: ignore[arg-type]
    data = _data(sections["data"])  # type: ignore[arg-type]
    train = _train(sections["train"])  # type: ignore[arg-type]
    if train.compile and method["kind"] == "prefix":
        raise SpecError(file, "train.compile", "prefix tuning cannot be compiled: its per-layer key/value cache "
                        "recompiles every layer; turn compile off or use lora")
    eval_spec = _eval(sections["eval"])  # type: ignore[arg-type]
    checkpoint = _checkpoint(sections["checkpoint"])  # type: ignore[arg-type]
    resources = _resources(sections["resources"])  # type: ignore[arg-type]

    hub_section = top.section("hub", optional=True)
    hub = dict(hub_section.raw) if hub_section is not None else None
    fingerprints = top.section("fingerprints")
    assert fingerprints is not None
    job_fingerprint = fingerprints.string("job")
    fingerprints.done()
    top.done()
    return JobSpec(
        schema_version=version,
        run_id=run_id,
        experiment=experiment,
        run_dir=Path(run_dir),
        sweep_values=dict(sweep_values),
        model=model,
        method=method,
        data=data,
        train=train,
        eval=eval_spec,
        checkpoint=checkpoint,
        resources=resources,
        job_fingerprint=job_fingerprint,
        hub=hub,
    )


def read_raw_spec(path: Path) -> Any:
    """The parsed JSON of a job file; SpecError when it cannot be read or is not JSON."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(name, "", "file not found (pass the run's job.json written by peftctl)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(name, "", f"cannot read the file: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError(name, "", f"line {err.lineno} column {err.colno}: not valid JSON: {err.msg}") from None


def load_spec(path: Path) -> JobSpec:
    """Reads and validates job.json; raises SpecError (exit 2) naming the file and the bad field."""
    return parse_spec(read_raw_spec(path), file=path.name)
