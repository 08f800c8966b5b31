"""Experiment trackers: TensorBoard, Weights & Biases and MLflow, fed from the run's events.

The trackers listen on the event writer (events.py): each event, once written, is passed to them, so
what a tracker shows is what events.jsonl says, at the same steps (loss, lr, tokens/s and epoch at
`progress`, loss and perplexity at `eval`, the final metrics at `done`). Only rank 0 has trackers
(__main__._train); the others' writers are quiet.

A tracker starts at the `start` event (it then knows whether the attempt resumed) and finishes when
the shim ends. Any exception from a tracker (a missing package, a refused login, a server that is
down) switches that tracker off for the rest of the attempt and is recorded as a `warning` event: a
tracker never fails or stops the training. Messages have the values of secret-looking environment
variables and the credentials of URLs masked.

Settings follow each library's own: only what `logging` in the config sets is passed on, so WANDB_*
and MLFLOW_* variables (and the API keys and tokens, which never are in job.json) work as documented.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from peftshim.contract import EXIT_DONE, EXIT_FAILED, EXIT_INTERRUPTED
from peftshim.events import EventWriter
from peftshim.spec import JobSpec

# The spec's fields that are not hyperparameters: where the run lives, how it is versioned and logged.
_NOT_HYPERPARAMETERS = ("run_dir", "schema_version", "logging", "job_fingerprint")

# The tag that finds an MLflow run again when an attempt resumes, and the one that groups a sweep.
MLFLOW_RUN_ID_TAG = "peftctl.run_id"
MLFLOW_EXPERIMENT_TAG = "peftctl.experiment"

Outcome = str  # "done", "interrupted" or "failed": how the attempt ended, from its last event


def metrics_of(event: dict[str, Any]) -> tuple[int, dict[str, float]] | None:
    """The (step, metrics) a tracker logs for an event; None for events that carry none."""
    kind = event["type"]
    if kind == "progress":
        return event["step"], {"train/loss": event["loss"], "train/lr": event["lr"],
                               "train/tokens_per_s": event["tokens_per_s"], "train/epoch": event["epoch"]}
    if kind == "eval":
        return event["step"], {"eval/loss": event["loss"], "eval/perplexity": event["perplexity"]}
    if kind == "done":
        return event["step"], {f"final/{name}": float(value) for name, value in event["metrics"].items()}
    return None


def hyperparameters(spec: JobSpec) -> dict[str, Any]:
    """The resolved job as nested plain values, without what only locates or versions the run."""
    job = dataclasses.asdict(spec)
    for name in _NOT_HYPERPARAMETERS:
        job.pop(name, None)
    return json.loads(json.dumps(job, default=str))  # Paths and the like as text


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """Dotted keys to scalars (`method.r`); lists and nulls as JSON text (MLflow params, TensorBoard hparams)."""
    flat: dict[str, str | int | float | bool] = {}
    for key, member in value.items():
        name = f"{prefix}{key}"
        if isinstance(member, dict) and member:
            flat.update(flatten(member, f"{name}."))
        elif isinstance(member, (str, int, float, bool)):
            flat[name] = member
        else:
            flat[name] = json.dumps(member)
    return flat


_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)


def scrub(text: str, environ: dict[str, str] | None = None) -> str:
    """`text` with secret-looking environment values and URL credentials masked, on one line, short."""
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if _SECRET_NAME.search(name) and len(value) >= 8:  # shorter values are flags and words, not keys
            text = text.replace(value, "***")
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


class Tracker(Protocol):
    def log(self, step: int, metrics: dict[str, float]) -> None: ...

    def finish(self, outcome: Outcome) -> None: ...


# --- the three trackers ------------------------------------------------------------------------


class TensorBoardTracker:
    """Event files in <run_dir>/tensorboard, one per attempt, read as one run by TensorBoard."""

    def __init__(self, spec: JobSpec, start: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        resumed = start["resumed_from_step"]
        # A later attempt redoes the steps after the checkpoint it resumes from (all of them without
        # one): purge_step makes TensorBoard drop what earlier attempts logged from there on, so each
        # step keeps the value of the attempt that went on.
        purge = resumed + 1 if resumed is not None else (0 if start["attempt"] > 1 else None)
        self.writer = SummaryWriter(log_dir=str(spec.run_dir / "tensorboard"), purge_step=purge, flush_secs=30)
        if resumed is None:
            params = flatten(hyperparameters(spec))
            self.writer.add_text("config", "```json\n" + json.dumps(hyperparameters(spec), indent=2) + "\n```", 0)
            # In this run's own event file (SummaryWriter.add_hparams would start another run dir), so
            # the HParams dashboard shows the run with its scalars.
            for summary in hparams(params, {"eval/loss": 0.0, "train/loss": 0.0}):
                self.writer.file_writer.add_summary(summary)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, global_step=step)

    def finish(self, outcome: Outcome) -> None:
        self.writer.close()


class WandbTracker:
    """A W&B run named and identified by the run id; a resumed attempt continues it (resume="allow")."""

    def __init__(self, spec: JobSpec, start: dict[str, Any]) -> None:
        import wandb

        settings = spec.logging.wandb if spec.logging is not None else None
        chosen = {key: getattr(settings, key) for key in ("project", "entity", "group", "mode")
                  if settings is not None and getattr(settings, key) is not None}
        # Defaults only where neither the config nor W&B's own variable decides.
        if "project" not in chosen and not os.environ.get("WANDB_PROJECT"):
            chosen["project"] = "peftctl"
        if "group" not in chosen and not os.environ.get("WANDB_RUN_GROUP"):
            chosen["group"] = spec.experiment  # a sweep's runs side by side
        if not os.environ.get("WANDB_DIR"):
            chosen["dir"] = str(spec.run_dir)  # <run_dir>/wandb, with the run's other files
        self.run = wandb.init(id=spec.run_id, name=spec.run_id, config=hyperparameters(spec), resume="allow",
                              job_type="train", **chosen)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        # W&B keeps one row per step and ignores steps below its last one (the steps a resumed attempt
        # redoes after its checkpoint keep the first attempt's values there).
        self.run.log(metrics, step=step)

    def finish(self, outcome: Outcome) -> None:
        if outcome == "interrupted":
            self.run.mark_preempting()  # the run is resumable, not crashed
        codes = {"done": EXIT_DONE, "interrupted": EXIT_INTERRUPTED}
        self.run.finish(exit_code=codes.get(outcome, EXIT_FAILED))


def mlflow_tracking_uri(spec: JobSpec) -> str:
    """logging.mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else a file store beside the experiments."""
    settings = spec.logging.mlflow if spec.logging is not None else None
    if settings is not None and settings.tracking_uri:
        uri = settings.tracking_uri
        return Path(uri).as_uri() if uri.startswith("/") else uri
    return os.environ.get("MLFLOW_TRACKING_URI") or (spec.run_dir.parent.parent / "mlruns").resolve().as_uri()


class MlflowTracker:
    """An MLflow run named by the run id (tag peftctl.run_id finds it again on resume), the job as params."""

    def __init__(self, spec: JobSpec, start: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
        from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        uri = mlflow_tracking_uri(spec)
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store in maintenance and refuses it unless opted in; the config
            # asked for one (mlflow-skinny has no SQL backend, and a local store needs no server).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        settings = spec.logging.mlflow if spec.logging is not None else None
        name = (settings.experiment if settings is not None else None) or os.environ.get("MLFLOW_EXPERIMENT_NAME") \
            or spec.experiment
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(name)
            except MlflowException:  # another run of the sweep created it meanwhile
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
                experiment_id = found.experiment_id
        else:
            experiment_id = experiment.experiment_id
        earlier = self.client.search_runs([experiment_id], filter_string=f"tags.`{MLFLOW_RUN_ID_TAG}` = '{spec.run_id}'",
                                          order_by=["attributes.start_time DESC"], max_results=1)
        if earlier:
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            logged = earlier[0].data.params
        else:
            tags = {MLFLOW_RUN_ID_TAG: spec.run_id, MLFLOW_EXPERIMENT_TAG: spec.experiment}
            self.run_id = self.client.create_run(experiment_id, run_name=spec.run_id, tags=tags).info.run_id
            logged = {}
        # Params cannot change once logged (a resumed run has them already); MLflow caps their length.
        params = [Param(key[:MAX_ENTITY_KEY_LENGTH], str(value)[:MAX_PARAM_VAL_LENGTH])
                  for key, value in flatten(hyperparameters(spec)).items() if key[:MAX_ENTITY_KEY_LENGTH] not in logged]
        for first in range(0, len(params), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[first:first + MAX_PARAMS_TAGS_PER_BATCH])

    def log(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(name, value, now, step) for name, value in metrics.items()])

    def finish(self, outcome: Outcome) -> None:
        status = {"done": "FINISHED", "interrupted": "KILLED"}.get(outcome, "FAILED")
        self.client.set_terminated(self.run_id, status=status)


# --- the set of them, on the event writer --------------------------------------------------------

TrackerFactory = Callable[[JobSpec, dict[str, Any]], Tracker]


def configured(spec: JobSpec) -> list[tuple[str, TrackerFactory]]:
    """(source name, factory) of each tracker the job's `logging` turns on."""
    logging = spec.logging
    if logging is None:
        return []
    chosen: list[tuple[str, TrackerFactory]] = []
    if logging.tensorboard:
        chosen.append(("tensorboard", TensorBoardTracker))
    if logging.wandb is not None:
        chosen.append(("wandb", WandbTracker))
    if logging.mlflow is not None:
        chosen.append(("mlflow", MlflowTracker))
    return chosen


class Trackers:
    """The job's trackers, listening on `events`; `close()` when the attempt ends, whatever happened."""

    def __init__(self, spec: JobSpec, events: EventWriter,
                 factories: list[tuple[str, TrackerFactory]] | None = None) -> None:
        self.spec = spec
        self.events = events
        self.factories = configured(spec) if factories is None else factories
        self.active: dict[str, Tracker] = {}
        self.outcome: Outcome = "failed"
        events.listeners.append(self.on_event)

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "start":
            for source, factory in self.factories:
                if source not in self.active:
                    self._guarded(source, "starting", lambda factory=factory, source=source:
                                  self.active.__setitem__(source, factory(self.spec, event)))
        found = metrics_of(event)
        if found is not None:
            step, metrics = found
            for source, tracker in list(self.active.items()):
                self._guarded(source, f"logging step {step}", lambda tracker=tracker: tracker.log(step, metrics))
        if kind in ("done", "interrupted", "error"):
            self.outcome = {"done": "done", "interrupted": "interrupted"}.get(kind, "failed")

    def close(self) -> None:
        for source, tracker in list(self.active.items()):
            self._guarded(source, "finishing", lambda tracker=tracker: tracker.finish(self.outcome))
        self.active.clear()
        if self.on_event in self.events.listeners:
            self.events.listeners.remove(self.on_event)

    def _guarded(self, source: str, doing: str, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as err:  # noqa: BLE001 - no tracker may end the run (SystemExit from a library, too)
            if isinstance(err, KeyboardInterrupt):
                raise
            self.active.pop(source, None)
            hint = " (install python/requirements-trackers.txt in the shim's Python)" \
                if isinstance(err, ModuleNotFoundError) else ""
            message = scrub(f"{source} switched off ({doing}): {type(err).__name__}: {err}{hint}")
            try:
                self.events.warning(source=source, message=message)
            except OSError:  # a full disk: the run's own writes report it
                pass
