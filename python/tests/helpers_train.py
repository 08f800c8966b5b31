"""Shared helpers for the shim's training tests: complete job specs and running the shim.

job_spec() builds a fully resolved job.json the way the controller would (every default of
src/config/schema.ts filled in, the batch layout of src/config/batch.ts), so these tests do not depend
on the TypeScript planner; the shim validates it against schema/job.schema.json like any job.json.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYTHON_DIR = PROJECT_ROOT / "python"
SAMPLE_DATA = PROJECT_ROOT / "data" / "samples" / "extes-sample.json"

SCHEMA = PROJECT_ROOT / "schema" / "job.schema.json"


def _defaults(node: dict[str, Any]) -> dict[str, Any]:
    """Every default of a JSON Schema object, nested objects included."""
    out: dict[str, Any] = {}
    required = set(node.get("required", ()))
    for key, prop in node.get("properties", {}).items():
        if prop.get("type") == "object" and "properties" in prop:
            if key in required or "default" in prop:  # an optional section (eval.data) stays out
                out[key] = _defaults(prop)
        elif "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out


# The defaults of src/config/schema.ts, read from the job's JSON Schema generated from it (a vitest
# checks that it is fresh), so these tests build the same resolved specs as the planner without running it.
_SCHEMA = json.loads(SCHEMA.read_text())["properties"]
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    variant["properties"]["kind"]["const"]: {k: v for k, v in _defaults(variant).items() if k != "kind"}
    for variant in _SCHEMA["method"]["oneOf"]
}
DEFAULTS: dict[str, Any] = {
    "model": {"base": "builtin:tiny-llama", **_defaults(_SCHEMA["model"])},
    "data": {"format": "extes", **_defaults(_SCHEMA["data"])},
    **{section: _defaults(_SCHEMA[section]) for section in ("train", "eval", "checkpoint", "resources")},
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def job_spec(run_dir: Path, *, method: str | dict[str, Any] = "lora", data_path: Path = SAMPLE_DATA,
             fingerprint: str = "f" * 64, **sections: dict[str, Any]) -> dict[str, Any]:
    """A complete job spec for `run_dir`; `sections` override parts, e.g. train={"lr": 1e-3}."""
    method_spec = {"kind": method} if isinstance(method, str) else dict(method)
    method_spec = {"kind": method_spec["kind"], **METHOD_DEFAULTS[method_spec["kind"]], **method_spec}
    spec = _merge(DEFAULTS, {"data": {"path": str(Path(data_path).resolve())}})
    spec = _merge(spec, sections)
    train = spec["train"]
    # batch.ts's layout: accumulation per device, micro-batches per step over all devices
    train.setdefault("micro_batches_per_step", max(1, train["batch_size"] // train["micro_batch_size"]))
    devices = max(1, spec["resources"]["gpus"])
    train.setdefault("gradient_accumulation_steps", max(1, train["micro_batches_per_step"] // devices))
    return {
        "schema_version": 2,
        "run_id": run_dir.name,
        "experiment": "pytest",
        "run_dir": str(run_dir.resolve()),
        "sweep_values": {},
        "model": spec["model"],
        "method": method_spec,
        "data": spec["data"],
        "train": train,
        "eval": spec["eval"],
        "checkpoint": spec["checkpoint"],
        "resources": spec["resources"],
        "fingerprints": {"job": fingerprint},
    }


# bench/gpu_check.sh sets PEFTSHIM_TEST_GPUS=1 to run the training tests on a GPU (bf16, fused AdamW).
TEST_GPUS = int(os.environ.get("PEFTSHIM_TEST_GPUS", "0"))


def small_job(run_dir: Path, *, method: str | dict[str, Any] = "lora", **overrides: dict[str, Any]) -> dict[str, Any]:
    """A CPU-sized job on the sample data: short rows, few steps, frequent logs and checkpoints."""
    base: dict[str, Any] = {
        "data": {"max_length": 128},
        "train": {"max_steps": 12, "lr": 1e-3, "batch_size": 8, "micro_batch_size": 4, "warmup_steps": 2,
                  "log_every_steps": 2},
        "eval": {"every_steps": 4, "generate": {"max_new_tokens": 8, "samples": 0}},
        "checkpoint": {"every_steps": 4, "keep_last": 2, "keep_adapters": "best"},
        "resources": {"gpus": TEST_GPUS},
    }
    return job_spec(run_dir, method=method, **_merge(base, overrides))


def write_job(run_dir: Path, spec: dict[str, Any]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "job.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


def shim_env(cache_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYTHON_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    if cache_dir is not None:
        env["PEFTSHIM_CACHE_DIR"] = str(cache_dir)
    return env


def shim_command(job: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "peftshim", "train", "--job", str(job), *extra]


def run_shim(job: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shim_command(job, *extra), env=shim_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=PROJECT_ROOT)


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def events_of(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


def run_main_in_process(*args: str) -> int:
    """peftshim's CLI entry in this process (no interpreter start-up), restoring pytest's signal handlers."""
    import signal

    from peftshim.__main__ import main

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return main(list(args))
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
