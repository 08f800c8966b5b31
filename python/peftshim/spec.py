"""The job spec (job.json): one run's fully resolved config, written by the controller.

src/plan/jobspec.ts (zod) is the one definition of the file; `npm run schema` writes it out as
schema/job.schema.json, and every job.json is checked against that here, every violation reported at
once. A file of an earlier schema_version is migrated first (one step per version, as migrateJob in
jobspec.ts does). The only checks Python adds are those that need the model or the host
(methods.py, model.py, train.py).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar, Union, get_args, get_type_hints

from jsonschema import Draft202012Validator, ValidationError

from peftshim.contract import JOB_SCHEMA_VERSION


@dataclass(frozen=True, order=True)
class Violation:
    path: str  # dotted, e.g. train.lr; empty for the file as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(Exception):
    """A bad job spec (exit 2): one violation, or every one the schema found, each naming its field."""

    def __init__(self, file: str, field_path: str = "", message: str = "", *,
                 violations: Sequence[Violation] = ()) -> None:
        self.file = file
        self.violations = list(violations) or [Violation(field_path, message)]
        listed = "; ".join(str(v) for v in self.violations)
        count = f"{len(self.violations)} problems: " if len(self.violations) > 1 else ""
        super().__init__(f"{file}: {count}{listed}")


@dataclass(frozen=True)
class QuantizationSpec:
    """model.quantization: the base model's linears loaded through bitsandbytes (quantization.py)."""

    bits: int
    type: str
    double_quant: bool
    compute_dtype: str


@dataclass(frozen=True)
class ModelSpec:
    base: str
    revision: str | None
    dtype: str
    attn: str
    trust_remote_code: bool
    quantization: QuantizationSpec | None = None


@dataclass(frozen=True, kw_only=True)
class LoraMethod:
    kind: Literal["lora"] = "lora"
    r: int
    alpha: float
    dropout: float
    target_modules: list[str]
    use_dora: bool
    use_rslora: bool
    bias: str


@dataclass(frozen=True, kw_only=True)
class AdapterMethod:
    kind: Literal["adapter"] = "adapter"
    adapter_len: int
    adapter_layers: int


@dataclass(frozen=True, kw_only=True)
class Ia3Method:
    kind: Literal["ia3"] = "ia3"
    target_modules: list[str]
    feedforward_modules: list[str]


@dataclass(frozen=True, kw_only=True)
class PrefixMethod:
    kind: Literal["prefix"] = "prefix"
    num_virtual_tokens: int


@dataclass(frozen=True, kw_only=True)
class PromptMethod:
    kind: Literal["prompt"] = "prompt"
    num_virtual_tokens: int
    init_text: str | None = None


@dataclass(frozen=True, kw_only=True)
class FullMethod:
    kind: Literal["full"] = "full"


MethodSpec = Union[LoraMethod, AdapterMethod, Ia3Method, PrefixMethod, PromptMethod, FullMethod]
_METHODS: dict[str, type] = {cls.kind: cls for cls in get_args(MethodSpec)}


@dataclass(frozen=True)
class SplitSpec:
    train: float
    valid: float
    test: float
    seed: int


@dataclass(frozen=True)
class DataSourceSpec:
    """data.source: which config, split and revision of a `datasets` data set (datasource.py)."""

    config: str | None
    split: str | None
    revision: str | None


@dataclass(frozen=True)
class DataSpec:
    format: str
    path: str  # a file, a save_to_disk directory, or hf://datasets/<org>/<name> (never a Path: it would fold the //)
    strategy: str
    max_length: int
    packing: bool
    max_examples: int | None
    split: SplitSpec
    source: DataSourceSpec | None = None
    columns: dict[str, str] | None = None  # the format's field -> the column holding it
    chat_template: str | None = None  # a Jinja chat template in place of the tokenizer's
    system_prompt: str | None = None


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
    # Over all devices: batch_size / micro_batch_size (under torchrun each rank takes its share).
    micro_batches_per_step: int


@dataclass(frozen=True)
class GenerateSpec:
    max_new_tokens: int
    samples: int
    # `peftctl eval`'s decoding (generate.py); migrate_v1 gives older job files their defaults.
    do_sample: bool
    temperature: float
    top_p: float
    top_k: int
    num_beams: int
    min_new_tokens: int
    no_repeat_ngram_size: int
    repetition_penalty: float
    seed: int
    batch_size: int


@dataclass(frozen=True)
class EvalDataSpec:
    """`peftctl eval` on another data set than data's (eval.data); eval.embeddings and eval.toxicity are the controller's."""

    format: str
    path: str
    dialogues: str  # "split": the --split share by data.split; "all": every dialogue


@dataclass(frozen=True)
class EvalSpec:
    every_steps: int
    generate: GenerateSpec
    data: EvalDataSpec | None


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
class WandbSpec:
    """Only what the config sets (None: W&B's own WANDB_* variables and defaults decide)."""

    project: str | None
    entity: str | None
    group: str | None
    mode: str | None


@dataclass(frozen=True)
class MlflowSpec:
    tracking_uri: str | None
    experiment: str | None


@dataclass(frozen=True)
class LoggingSpec:
    """The experiment trackers (trackers.py); changes no run id."""

    tensorboard: bool
    wandb: WandbSpec | None
    mlflow: MlflowSpec | None


@dataclass(frozen=True)
class JobSpec:
    schema_version: int
    run_id: str
    experiment: str
    run_dir: Path
    sweep_values: dict[str, Any]
    model: ModelSpec
    method: MethodSpec
    data: DataSpec
    train: TrainSpec
    eval: EvalSpec
    checkpoint: CheckpointSpec
    resources: ResourcesSpec
    job_fingerprint: str
    # The shim never talks to the Hub; the section is only validated.
    hub: dict[str, Any] | None = field(default=None)
    logging: LoggingSpec | None = field(default=None)


# --- migration ----------------------------------------------------------------------------------


def migrate_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """schema_version 1 -> 2: train.compile did not exist (false), the accumulation was all there was
    (micro_batches_per_step = gradient_accumulation_steps x devices), and eval.generate's decoding
    settings did not exist (their defaults, read from the job schema)."""
    migrated = {**raw, "schema_version": 2}
    train, resources, evaluation = raw.get("train"), raw.get("resources"), raw.get("eval")
    if isinstance(train, dict):
        train = {"compile": False, **train}
        accumulation = train.get("gradient_accumulation_steps")
        gpus = resources.get("gpus") if isinstance(resources, dict) else None
        if _is_int(accumulation) and _is_int(gpus):  # otherwise validation names what is wrong
            train["micro_batches_per_step"] = accumulation * max(1, gpus)
        migrated["train"] = train
    if isinstance(evaluation, dict) and isinstance(evaluation.get("generate"), dict):
        migrated["eval"] = {**evaluation, "generate": {**_schema_defaults("eval", "generate"), **evaluation["generate"]}}
    return migrated


def _schema_defaults(*section: str) -> dict[str, Any]:
    """The `default` of every field of a section of the job schema (the zod schema's defaults)."""
    node = json.loads(schema_path().read_text(encoding="utf-8"))
    for key in section:
        node = node["properties"][key]
    return {key: field["default"] for key, field in node["properties"].items() if "default" in field}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _migrated(raw: Any, file: str) -> Any:
    if not isinstance(raw, dict) or "schema_version" not in raw:
        return raw  # validation reports it
    version = raw["schema_version"]
    if version == JOB_SCHEMA_VERSION and not isinstance(version, bool):
        return raw
    if version == 1 and not isinstance(version, bool):
        return migrate_v1(raw)
    raise SpecError(file, "schema_version", f"unknown version {_describe(version)}; this shim reads 1 and "
                    f"{JOB_SCHEMA_VERSION} (was the file written by a newer peftctl?)")


# --- validation ---------------------------------------------------------------------------------


def schema_path() -> Path:
    """The copy `pip install ./python` put beside this file (python/setup.py), else schema/job.schema.json of the
    checkout (or of the image, /opt/peftshim); $PEFTSHIM_JOB_SCHEMA overrides."""
    configured = os.environ.get("PEFTSHIM_JOB_SCHEMA")
    if configured:
        return Path(configured)
    installed = Path(__file__).resolve().parent / "job.schema.json"
    return installed if installed.is_file() else Path(__file__).resolve().parents[2] / "schema" / "job.schema.json"


@functools.lru_cache(maxsize=4)
def _validator(path: Path) -> Draft202012Validator:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RuntimeError(f"cannot read the job schema {path} (`npm run schema` writes it; "
                           f"PEFTSHIM_JOB_SCHEMA names another): {err}") from None
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def violations(raw: Any) -> list[Violation]:
    """Every way `raw` breaks the job schema, sorted by field path."""
    return sorted({v for error in _validator(schema_path()).iter_errors(raw) for v in _explain(error)})


_TYPE_NAMES = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true or false",
               "object": "an object", "array": "a list", "null": "null"}
_MISSING = "missing (job specs are fully resolved)"


def _explain(error: ValidationError) -> list[Violation]:
    """The violations one schema error stands for, in the shim's words."""
    path, keyword, expected, value = tuple(error.absolute_path), error.validator, error.validator_value, error.instance
    if keyword == "required":
        return [Violation(_dotted(path + (key,)), _MISSING) for key in expected if key not in value]
    if keyword == "additionalProperties":
        known = error.schema.get("properties", {})
        return [Violation(_dotted(path + (key,)), "unknown field") for key in value if key not in known]
    if keyword in ("oneOf", "anyOf"):
        return _explain_variants(error)
    got = _describe(value)
    messages = {
        "type": lambda: "expected " + " or ".join(_TYPE_NAMES.get(t, t) for t in _as_list(expected)) + f", got {got}",
        "enum": lambda: f"expected one of {', '.join(map(str, expected))}, got {got}",
        "const": lambda: f"expected {json.dumps(expected)}, got {got}",
        "minimum": lambda: f"expected at least {expected}, got {got}",
        "exclusiveMinimum": lambda: f"expected more than {expected}, got {got}",
        "maximum": lambda: f"expected at most {expected}, got {got}",
        "minLength": lambda: f"expected at least {expected} character(s), got {got}",
        "minItems": lambda: f"expected at least {expected} item(s), got {got}",
        "pattern": lambda: f"{got} does not match {expected}" + (f" ({error.schema['description']})"
                                                              if "description" in error.schema else ""),
    }
    return [Violation(_dotted(path), messages[keyword]() if keyword in messages else error.message)]


def _explain_variants(error: ValidationError) -> list[Violation]:
    """A union discriminated by `kind` (method): the errors of the variant the object names."""
    path, value = tuple(error.absolute_path), error.instance
    kinds = [variant.get("properties", {}).get("kind", {}).get("const") for variant in error.validator_value]
    if None in kinds:
        return [Violation(_dotted(path), error.message)]
    if not isinstance(value, dict):
        return [Violation(_dotted(path), f"expected an object, got {_describe(value)}")]
    if value.get("kind") not in kinds:
        listed = ", ".join(kinds)
        problem = f"expected one of {listed}, got {_describe(value['kind'])}" if "kind" in value else f"missing (one of {listed})"
        return [Violation(_dotted(path + ("kind",)), problem)]
    chosen = kinds.index(value["kind"])
    return [v for sub in error.context or () if sub.relative_schema_path[0] == chosen for v in _explain(sub)]


def _dotted(path: tuple[Any, ...]) -> str:
    text = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")
    return text or "(top level)"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _describe(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- the dataclasses ----------------------------------------------------------------------------

T = TypeVar("T")


def _build(cls: type[T], raw: dict[str, Any]) -> T:
    """`cls` from a validated object: nested dataclasses built too, an optional field left out is None,
    and numbers take the field's type (JSON Schema counts 4.0 as an integer)."""
    hints = get_type_hints(cls)
    return cls(**{f.name: _typed(hints[f.name], raw[f.name]) if f.name in raw else None for f in fields(cls)})


def _typed(hint: Any, value: Any) -> Any:
    if is_dataclass(hint):
        return _build(hint, value)  # type: ignore[arg-type]
    kinds = get_args(hint) or (hint,)
    optional_class = next((kind for kind in kinds if is_dataclass(kind)), None)
    if optional_class is not None and isinstance(value, dict):
        return _build(optional_class, value)  # type: ignore[arg-type]
    if isinstance(value, float) and int in kinds and float not in kinds:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and float in kinds and int not in kinds:
        return float(value)
    return value


def _job_spec(raw: dict[str, Any]) -> JobSpec:
    return JobSpec(
        schema_version=int(raw["schema_version"]),
        run_id=raw["run_id"],
        experiment=raw["experiment"],
        run_dir=Path(raw["run_dir"]),
        sweep_values=dict(raw["sweep_values"]),
        model=_build(ModelSpec, raw["model"]),
        method=_build(_METHODS[raw["method"]["kind"]], raw["method"]),
        data=_build(DataSpec, raw["data"]),
        train=_build(TrainSpec, raw["train"]),
        eval=_build(EvalSpec, raw["eval"]),
        checkpoint=_build(CheckpointSpec, raw["checkpoint"]),
        resources=_build(ResourcesSpec, raw["resources"]),
        job_fingerprint=raw["fingerprints"]["job"],
        hub=raw.get("hub"),
        logging=_build(LoggingSpec, raw["logging"]) if "logging" in raw else None,
    )


# --- entry points -------------------------------------------------------------------------------


def parse_spec(raw: Any, file: str = "job.json") -> JobSpec:
    """A parsed job.json (of this or an earlier schema_version) -> JobSpec; SpecError lists every violation."""
    current = _migrated(raw, file)
    found = violations(current)
    if found:
        raise SpecError(file, violations=found)
    return _job_spec(current)


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
    """Reads, migrates and validates job.json; raises SpecError (exit 2) naming the file and every bad field."""
    return parse_spec(read_raw_spec(path), file=path.name)
