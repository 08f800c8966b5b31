"""Experiment trackers against the real libraries: a real training run of builtin:tiny-llama with
TensorBoard, W&B (offline) and MLflow (a file store) on, interrupted and resumed, each read back with
that library's own reader; trackers that cannot start leave the training alone and warn.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers_train import PROJECT_ROOT, events_of, read_events, shim_command, shim_env, small_job, write_job

STEPS = 6
SECRET = "sekrit-4f9a1c2e7b"  # an API key value that must reach no file and no message


def tracker_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The shim's environment with W&B kept to `tmp` and off the network, and no tracker settings of the host."""
    env = {name: value for name, value in shim_env().items() if not name.startswith(("WANDB_", "MLFLOW_"))}
    env.update(WANDB_SILENT="true", WANDB_CONFIG_DIR=str(tmp / "wandb-config"), WANDB_CACHE_DIR=str(tmp / "wandb-cache"),
               WANDB_DATA_DIR=str(tmp / "wandb-data"), WANDB_ARTIFACT_DIR=str(tmp / "wandb-artifacts"),
               WANDB_API_KEY=SECRET)
    env.update(extra)
    return env


def tracked_job(run_dir: Path, logging: dict[str, Any]) -> Path:
    spec = small_job(run_dir, method={"kind": "lora", "r": 4}, train={"max_steps": STEPS, "log_every_steps": 1},
                     eval={"every_steps": 3}, checkpoint={"every_steps": 3})
    spec["logging"] = logging
    return write_job(run_dir, spec)


def train(job: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shim_command(job, *extra), env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300)


def last_per_step(events: list[dict[str, Any]], type_: str, field: str) -> dict[int, float]:
    """step -> value of the newest event of that step (a resumed attempt's, where steps were redone)."""
    return {e["step"]: e[field] for e in events_of(events, type_)}


# --- W&B's offline run file ---------------------------------------------------------------------


def wandb_records(path: Path) -> Iterator[Any]:
    """The records of a run-<id>.wandb file, decoded with wandb's own protobuf messages.

    wandb 0.31 ships no Python reader of this file (its reader lives in the Go wandb-core): it is
    LevelDB's log format (32 KiB blocks of crc32 + length + type chunks) after a 7-byte ":W&B" header.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    block, header, at, pending = 32768, 7, 7, b""
    while at + header <= len(data):
        if block - at % block < header:  # a block's tail too short for a chunk header is padding
            at += block - at % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[at:at + header])
        chunk = data[at + header:at + header + length]
        at += header + length
        if kind == 0:
            break
        assert zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF == crc, f"{path}: bad chunk checksum at {at}"
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # full, or the last chunk of a record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def wandb_run(path: Path) -> dict[str, Any]:
    """What the file says of the run: its identity, config, history rows and exit code."""
    found: dict[str, Any] = {"history": {}, "exit_code": None}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found.update(id=record.run.run_id, name=record.run.display_name, group=record.run.run_group,
                         project=record.run.project,
                         config={item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "history":
            row = {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item}
            found["history"].setdefault(int(row["_step"]), {}).update(row)
        elif kind == "exit":
            found["exit_code"] = record.exit.exit_code
    return found


# --- a run with every tracker, interrupted and resumed ------------------------------------------


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run_dir, MLflow store) of a run stopped after step 2 and resumed to the end.

    The stop is SIGTERM to the shim's process group, as the controller sends it (src/runs/proc.ts):
    W&B's service process, in that group, gets it too.
    """
    tmp = tmp_path_factory.mktemp("trackers")
    run_dir, store = tmp / "runs" / "pytest" / "tracked-r4-abc123", tmp / "mlruns"
    job = tracked_job(run_dir, {"tensorboard": True, "wandb": {"mode": "offline", "project": "peftctl-test"},
                                "mlflow": {"tracking_uri": store.as_uri(), "experiment": "trackers-test"}})
    env = tracker_env(tmp)
    proc = subprocess.Popen(shim_command(job), env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{") and json.loads(line)["type"] == "progress" and json.loads(line)["step"] == 2:
            os.killpg(proc.pid, signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err
    resumed = train(job, env, "--resume", "--attempt", "2")
    assert resumed.returncode == 0, resumed.stderr
    return run_dir, store


def test_the_run_trained_through_both_attempts_without_warnings(tracked_run: tuple[Path, Path]) -> None:
    run_dir, _ = tracked_run
    events = read_events(run_dir)
    assert [s["resumed_from_step"] is not None for s in events_of(events, "start")] == [False, True]
    assert len(events_of(events, "done")) == 1
    assert events_of(events, "warning") == []
    assert sorted(last_per_step(events, "progress", "loss")) == list(range(1, STEPS + 1))


def test_tensorboard_event_reader_reads_the_loss_series_of_the_events(tracked_run: tuple[Path, Path]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = tracked_run
    events = read_events(run_dir)
    board = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    board.Reload()
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one file per attempt
    for tag, type_, field in (("train/loss", "progress", "loss"), ("train/lr", "progress", "lr"),
                              ("eval/loss", "eval", "loss")):
        logged = [(point.step, point.value) for point in board.Scalars(tag)]
        expected = sorted(last_per_step(events, type_, field).items())
        assert [step for step, _ in logged] == [step for step, _ in expected], tag
        # TensorBoard keeps float32
        assert [value for _, value in logged] == pytest.approx([value for _, value in expected], rel=1e-6), tag
    (done,) = events_of(events, "done")
    assert board.Scalars("final/train_loss")[0].value == pytest.approx(done["metrics"]["train_loss"], rel=1e-6)
    (config,) = board.Tensors("config/text_summary")  # the resolved job, as text
    text = config.tensor_proto.string_val[0].decode()
    assert json.loads(text.removeprefix("```json\n").removesuffix("\n```"))["method"]["r"] == 4
    assert "_hparams_/experiment" in board.PluginTagToContent("hparams")


def test_wandb_offline_run_has_the_run_id_the_group_and_the_loss_history(tracked_run: tuple[Path, Path]) -> None:
    run_dir, _ = tracked_run
    events = read_events(run_dir)
    files = sorted(glob.glob(str(run_dir / "wandb" / "offline-run-*-tracked-r4-abc123" / "run-tracked-r4-abc123.wandb")))
    assert len(files) == 2  # one per attempt, the same run id: `wandb sync` makes them one run
    attempts = [wandb_run(Path(file)) for file in files]
    for run in attempts:
        assert (run["id"], run["name"], run["group"], run["project"]) == \
            ("tracked-r4-abc123", "tracked-r4-abc123", "pytest", "peftctl-test")
        assert run["config"]["method"]["r"] == 4 and run["config"]["train"]["max_steps"] == STEPS
        assert "logging" not in run["config"] and "run_dir" not in run["config"]
    assert [run["exit_code"] for run in attempts] == [75, 0]
    history = {step: row for run in attempts for step, row in run["history"].items()}
    losses = {step: row["train/loss"] for step, row in history.items() if "train/loss" in row}
    assert losses == pytest.approx(last_per_step(events, "progress", "loss"), rel=1e-12)
    evals = {step: row["eval/loss"] for step, row in history.items() if "eval/loss" in row}
    assert evals == pytest.approx(last_per_step(events, "eval", "loss"), rel=1e-12)
    (done,) = events_of(events, "done")
    assert history[STEPS]["final/eval_loss"] == pytest.approx(done["metrics"]["eval_loss"])


def test_mlflow_store_holds_one_run_named_by_the_run_id_across_attempts(tracked_run: tuple[Path, Path],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    run_dir, store = tracked_run
    events = read_events(run_dir)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses its file store unless opted in
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("trackers-test")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tracked-r4-abc123"
    assert run.info.status == "FINISHED"
    assert run.data.tags["peftctl.run_id"] == "tracked-r4-abc123" and run.data.tags["peftctl.experiment"] == "pytest"
    assert run.data.params["method.r"] == "4" and run.data.params["train.max_steps"] == str(STEPS)
    assert run.data.params["method.target_modules"] == json.dumps(["q_proj", "v_proj"])
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert {m.step: m.value for m in history} == pytest.approx(last_per_step(events, "progress", "loss"), rel=1e-12)
    assert len(history) == STEPS  # no step twice
    eval_history = client.get_metric_history(run.info.run_id, "eval/perplexity")
    assert {m.step: m.value for m in eval_history} == pytest.approx(last_per_step(events, "eval", "perplexity"))
    (done,) = events_of(events, "done")
    assert run.data.metrics["final/train_loss"] == pytest.approx(done["metrics"]["train_loss"])


def test_no_secret_lands_in_the_run_dir(tracked_run: tuple[Path, Path]) -> None:
    run_dir, store = tracked_run
    for directory in (run_dir, store):
        for path in directory.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert SECRET.encode() not in path.read_bytes(), path


# --- trackers that fail -------------------------------------------------------------------------


def test_trackers_that_cannot_start_warn_and_the_training_succeeds(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "pytest" / "failing-abc123"
    # MLflow: a server nobody listens on, one short try; W&B online against the same dead address,
    # with the (fake) API key in the environment; TensorBoard beside them keeps working.
    job = tracked_job(run_dir, {"tensorboard": True, "wandb": {"mode": "online"},
                                "mlflow": {"tracking_uri": "http://127.0.0.1:9"}})
    env = tracker_env(tmp_path, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="2",
                      WANDB_BASE_URL="http://127.0.0.1:9", WANDB_INIT_TIMEOUT="5")
    result = train(job, env)
    assert result.returncode == 0, result.stderr
    events = read_events(run_dir)
    warnings = {w["source"]: w["message"] for w in events_of(events, "warning")}
    assert sorted(warnings) == ["mlflow", "wandb"], warnings
    assert warnings["mlflow"].startswith("mlflow switched off (starting): ") and "127.0.0.1:9" in warnings["mlflow"]
    assert warnings["wandb"].startswith("wandb switched off (starting): ")
    assert all(SECRET not in message for message in warnings.values())
    assert len(events_of(events, "done")) == 1 and len(events_of(events, "progress")) == STEPS
    # the warnings came right after the start event, before any training step
    kinds = [e["type"] for e in events]
    assert kinds.index("warning") == kinds.index("start") + 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run_dir / "tensorboard"))
    board.Reload()
    assert [p.step for p in board.Scalars("train/loss")] == list(range(1, STEPS + 1))


def test_a_tracker_failing_mid_run_is_switched_off_and_the_others_go_on(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard itself, in-process: the second log call of one tracker raises."""
    from peftshim.events import EventWriter
    from peftshim.spec import parse_spec
    from peftshim.trackers import Trackers

    class Recorder:
        def __init__(self, fail_at: int | None) -> None:
            self.steps: list[int] = []
            self.fail_at = fail_at
            self.finished: str | None = None

        def log(self, step: int, metrics: dict[str, float]) -> None:
            if step == self.fail_at:
                raise ConnectionError(f"server went away (key {SECRET})")
            self.steps.append(step)

        def finish(self, outcome: str) -> None:
            self.finished = outcome

    run_dir = tmp_path / "run"
    spec = parse_spec(json.loads(tracked_job(run_dir, {"tensorboard": False}).read_text()))
    failing, steady = Recorder(fail_at=2), Recorder(fail_at=None)
    events = EventWriter(spec.run_id, run_dir / "events.jsonl", stream=open(os.devnull, "w"))
    trackers = Trackers(spec, events, factories=[("failing", lambda *_: failing), ("steady", lambda *_: steady)])
    monkeypatch.setenv("PEFTCTL_TEST_API_KEY", SECRET)
    events.start(attempt=1, versions={}, device="cpu", trainable=1, total=2, resumed_from_step=None)
    for step in (1, 2, 3):
        events.progress(step=step, total_steps=3, epoch=0.0, loss=1.0, lr=0.1, tokens_per_s=1.0, eta_s=0.0)
    events.done(step=3, metrics={"train_loss": 1.0}, adapter_path=str(run_dir / "adapter"))
    trackers.close()
    assert failing.steps == [1] and failing.finished is None
    assert steady.steps == [1, 2, 3, 3] and steady.finished == "done"  # step 3: progress, then done's metrics
    (warning,) = events_of(read_events(run_dir), "warning")
    assert warning["source"] == "failing"
    assert warning["message"] == "failing switched off (logging step 2): ConnectionError: server went away (key ***)"
    assert events.listeners == []


def test_scrub_masks_secret_values_and_url_credentials() -> None:
    from peftshim.trackers import scrub

    env = {"WANDB_API_KEY": "abcd1234", "MLFLOW_TRACKING_TOKEN": "tok-99999", "HOME": "/home/me", "A_KEY_FLAG": "true"}
    text = "failed: key abcd1234 for https://user:pw@mlflow.example/api, token tok-99999 in /home/me, true\n  next"
    assert scrub(text, env) == "failed: key *** for https://***@mlflow.example/api, token *** in /home/me, true next"


def test_a_tracker_whose_package_is_missing_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from peftshim.events import EventWriter
    from peftshim.spec import parse_spec
    from peftshim.trackers import Trackers

    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ModuleNotFoundError
    run_dir = tmp_path / "run"
    spec = parse_spec(json.loads(tracked_job(run_dir, {"tensorboard": False, "wandb": {"mode": "offline"}}).read_text()))
    events = EventWriter(spec.run_id, run_dir / "events.jsonl", stream=open(os.devnull, "w"))
    trackers = Trackers(spec, events)
    events.start(attempt=1, versions={}, device="cpu", trainable=1, total=2, resumed_from_step=None)
    events.progress(step=1, total_steps=1, epoch=0.0, loss=1.0, lr=0.1, tokens_per_s=1.0, eta_s=0.0)
    trackers.close()
    (warning,) = events_of(read_events(run_dir), "warning")
    assert warning["source"] == "wandb"
    assert warning["message"].startswith("wandb switched off (starting): ModuleNotFoundError: ")
    assert warning["message"].endswith("(install python/requirements-trackers.txt in the shim's Python)")


def replay(spec_path: Path, steps: int = 3) -> None:
    """Feeds a short attempt's events through the real trackers, in-process (no training)."""
    from peftshim.events import EventWriter
    from peftshim.spec import parse_spec
    from peftshim.trackers import Trackers

    spec = parse_spec(json.loads(spec_path.read_text()))
    events = EventWriter(spec.run_id, spec.run_dir / "events.jsonl", stream=open(os.devnull, "w"))
    trackers = Trackers(spec, events)
    events.start(attempt=1, versions={}, device="cpu", trainable=1, total=2, resumed_from_step=None)
    for step in range(1, steps + 1):
        events.progress(step=step, total_steps=steps, epoch=0.0, loss=1.0 / step, lr=0.1, tokens_per_s=1.0, eta_s=0.0)
    events.done(step=steps, metrics={"train_loss": 0.5}, adapter_path=str(spec.run_dir / "adapter"))
    trackers.close()


def test_unset_settings_are_the_libraries_own_environment_variables(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    for name, value in tracker_env(tmp_path).items():
        if name.startswith("WANDB_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "project-from-env")
    monkeypatch.setenv("WANDB_RUN_GROUP", "group-from-env")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "env-store").as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "experiment-from-env")
    run_dir = tmp_path / "runs" / "pytest" / "envrun-abc123"
    replay(tracked_job(run_dir, {"tensorboard": False, "wandb": {}, "mlflow": {}}))

    assert events_of(read_events(run_dir), "warning") == []
    assert not (run_dir / "wandb").exists()
    (file,) = (tmp_path / "wandb-dir" / "wandb").glob("offline-run-*-envrun-abc123/run-envrun-abc123.wandb")
    run = wandb_run(file)
    assert (run["name"], run["project"], run["group"]) == ("envrun-abc123", "project-from-env", "group-from-env")
    assert sorted(step for step, row in run["history"].items() if "train/loss" in row) == [1, 2, 3]
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "env-store").as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("experiment-from-env").experiment_id])
    assert found.info.run_name == "envrun-abc123" and found.info.status == "FINISHED"


def test_mlflow_without_a_uri_keeps_a_file_store_beside_the_experiments(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run_dir = tmp_path / "runs" / "pytest" / "storerun-abc123"
    replay(tracked_job(run_dir, {"tensorboard": False, "mlflow": {}}))
    assert events_of(read_events(run_dir), "warning") == []
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("pytest").experiment_id])  # the experiment's name
    assert [m.value for m in client.get_metric_history(found.info.run_id, "train/loss")] == [1.0, 0.5, 1.0 / 3]


def test_only_rank_zero_of_a_data_parallel_run_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mlflow.tracking import MlflowClient

    run_dir, store = tmp_path / "runs" / "pytest" / "ranks-abc123", tmp_path / "mlruns"
    spec = small_job(run_dir, train={"max_steps": 4, "log_every_steps": 1, "batch_size": 8, "micro_batch_size": 4},
                     eval={"every_steps": 2}, checkpoint={"every_steps": 2}, resources={"gpus": 2})
    spec["logging"] = {"tensorboard": True, "wandb": {"mode": "offline"}, "mlflow": {"tracking_uri": store.as_uri()}}
    job = write_job(run_dir, spec)
    env = {name: value for name, value in tracker_env(tmp_path).items() if name != "CUDA_VISIBLE_DEVICES"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "peftshim", "train", "--job", str(job)]
    result = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    events = read_events(run_dir)
    assert "x 2 ranks" in events_of(events, "start")[0]["device"] and events_of(events, "warning") == []
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    (file,) = (run_dir / "wandb").glob("offline-run-*/run-ranks-abc123.wandb")
    losses = {step: row["train/loss"] for step, row in wandb_run(file)["history"].items() if "train/loss" in row}
    assert losses == pytest.approx(last_per_step(events, "progress", "loss"), rel=1e-12)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=store.as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("pytest").experiment_id])
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 4


def test_tensorboard_keeps_the_resumed_attempts_values_of_redone_steps(tmp_path: Path) -> None:
    """An attempt that crashed after its last checkpoint (step 3) logged steps 4-5 that the next one redoes."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from peftshim.events import EventWriter
    from peftshim.spec import parse_spec
    from peftshim.trackers import Trackers

    run_dir = tmp_path / "run"
    spec = parse_spec(json.loads(tracked_job(run_dir, {"tensorboard": True}).read_text()))
    for attempt, resumed, steps, loss in ((1, None, range(1, 6), 1.0), (2, 3, range(4, 7), 2.0)):
        events = EventWriter(spec.run_id, run_dir / "events.jsonl", stream=open(os.devnull, "w"))
        trackers = Trackers(spec, events)
        events.start(attempt=attempt, versions={}, device="cpu", trainable=1, total=2, resumed_from_step=resumed)
        for step in steps:
            events.progress(step=step, total_steps=6, epoch=0.0, loss=loss, lr=0.1, tokens_per_s=1.0, eta_s=0.0)
        trackers.close()
    board = EventAccumulator(str(run_dir / "tensorboard"))
    board.Reload()
    assert [(p.step, p.value) for p in board.Scalars("train/loss")] == [(1, 1.0), (2, 1.0), (3, 1.0), (4, 2.0),
                                                                          (5, 2.0), (6, 2.0)]
