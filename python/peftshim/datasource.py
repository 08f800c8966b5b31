"""Where a data set's records come from: data.path (and data.source) -> Records, and what identifies them.

- a JSON file (`.json`, any other name): a JSON list of records, JSON Lines for format `chat` and for any
  file named `.jsonl` (datafile.py: decoded record by record, each failure naming file, line and record);
- a `.parquet` or `.csv` file, read with the `datasets` library (`load_dataset("parquet" | "csv",
  data_files=...)`): one record per row, "<file>: row <n>";
- a directory written by `datasets`' `save_to_disk` (a Dataset, or a DatasetDict and data.source.split);
- `hf://datasets/<org>/<name>`: `load_dataset(<org>/<name>, data.source.config, split=data.source.split,
  revision=data.source.revision)`; under HF_HUB_OFFLINE=1, the datasets cache's copy.

`datasets` is imported only when one of the last three is read. dialogues.py turns the records into
Dialogues with the format's reader, whatever their source, so every rule there applies alike.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftshim.datafile import DataError, Record, parse_json_list, parse_jsonl, read_text
from peftshim.files import sha256_file

HUB_PREFIX = "hf://datasets/"
TABLE_BUILDERS = {".parquet": "parquet", ".csv": "csv"}  # file suffix -> the `datasets` builder reading it
DEFAULT_SPLIT = "train"


@dataclass(frozen=True)
class Source:
    """data.source: which part of a `datasets` data set (config and revision only for hf://)."""

    config: str | None = None
    split: str | None = None
    revision: str | None = None


def is_hub(path: str | Path) -> bool:
    return str(path).startswith(HUB_PREFIX)


def hub_repo(uri: str) -> str:
    """`hf://datasets/<org>/<name>` -> `<org>/<name>` (a canonical data set may have no org)."""
    repo = uri[len(HUB_PREFIX):].strip("/")
    parts = repo.split("/")
    if not repo or len(parts) > 2 or any(not part for part in parts):
        raise DataError(f"{uri}: expected hf://datasets/<org>/<name>")
    return repo


def read_records(fmt: str, path: str | Path, source: Source | None = None, *, head: int | None = None) -> list[Record]:
    """The records of data.path in file order (the first `head` of them with one)."""
    source = source or Source()
    if is_hub(path):
        uri = str(path)
        return _rows(_load_hub(uri, source), f"{uri}[{source.split or DEFAULT_SPLIT}]", head)
    path = Path(path)
    if source.config is not None or source.revision is not None:
        raise DataError(f"{path}: data.source.config and data.source.revision choose a part of a Hub data set "
                        "(data.path hf://datasets/...); a local file or directory has neither")
    if path.is_dir():
        dataset, split = _load_from_disk(path, source)
        return _rows(dataset, str(path) if split is None else f"{path}[{split}]", head)
    if source.split is not None:
        raise DataError(f"{path}: data.source.split chooses a split of a save_to_disk directory or a Hub data set; "
                        "a data file is one split (data.split divides it)")
    builder = TABLE_BUILDERS.get(path.suffix.lower())
    if builder is not None:
        return _rows(_load_table(path, builder), str(path), head)
    text = read_text(path)
    if fmt == "chat" or path.suffix.lower() == ".jsonl":
        return parse_jsonl(path, text, limit=head)
    return parse_json_list(path, text, limit=head)


def source_digest(path: str | Path, source: Source | None = None) -> dict[str, Any]:
    """What identifies the data read (the data fingerprint's part for it): a file's sha256 (the same
    member as before directories and hf:// existed, so fingerprints of files stay as they were), a
    save_to_disk directory's data files, or a Hub data set's cached files."""
    source = source or Source()
    if is_hub(path):
        dataset = _load_hub(str(path), source)
        return {"hub": hub_repo(str(path)), "config": dataset.info.config_name, "split": source.split or DEFAULT_SPLIT,
                "revision": source.revision, "files_sha256": _files_sha256([Path(f["filename"]) for f in dataset.cache_files])}
    path = Path(path)
    try:
        if path.is_dir():
            return {"dir_sha256": _files_sha256(_saved_files(path), root=path)}
        return {"file_sha256": sha256_file(path)}
    except OSError as e:
        raise DataError(f"{e.filename or path}: cannot read the data: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:  # a state.json or dataset_dict.json that is not what datasets writes
        raise DataError(f"{path}: cannot read the saved data set's description: {_first_line(e)}") from None


# --- datasets ------------------------------------------------------------------------------------


def _datasets() -> Any:
    import datasets

    # Progress bars would fill the run's stderr.log with carriage returns.
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _load_table(path: Path, builder: str) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: data file not found; check data.path")
    datasets = _datasets()
    # The rows are copied out at once (`_rows`), so the prepared copy `datasets` would keep in the user's
    # cache is written to a temporary directory and read into memory instead.
    with tempfile.TemporaryDirectory(prefix="peftshim-data-") as cache:
        try:
            return datasets.load_dataset(builder, data_files=str(path), split=DEFAULT_SPLIT, cache_dir=cache,
                                         keep_in_memory=True)
        except Exception as e:  # noqa: BLE001 - pyarrow, pandas and datasets each raise their own
            raise DataError(f"{path}: cannot read as {builder}: {_first_line(e)}") from None


def _load_from_disk(path: Path, source: Source) -> tuple[Any, str | None]:
    if not (path / "dataset_info.json").is_file() and not (path / "dataset_dict.json").is_file():
        raise DataError(f"{path}: is a directory but not one written by datasets' save_to_disk (no dataset_info.json "
                        "or dataset_dict.json in it); check data.path")
    datasets = _datasets()
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read the saved data set: {_first_line(e)}") from None
    if not isinstance(loaded, datasets.DatasetDict):
        if source.split is not None:
            raise DataError(f"{path}: data.source.split {source.split!r} given, but the directory holds one Dataset, not splits")
        return loaded, None
    split = source.split or (DEFAULT_SPLIT if DEFAULT_SPLIT in loaded else next(iter(loaded)) if len(loaded) == 1 else None)
    if split not in loaded:
        wanted = "which split to read: set data.source.split" if split is None else f"no split {split!r}"
        raise DataError(f"{path}: {wanted} (the directory holds {', '.join(loaded)})")
    return loaded[split], split


def _load_hub(uri: str, source: Source) -> Any:
    repo = hub_repo(uri)
    datasets = _datasets()
    split = source.split or DEFAULT_SPLIT
    try:
        return datasets.load_dataset(repo, source.config, split=split, revision=source.revision)
    except ConnectionError as e:
        offline = " HF_HUB_OFFLINE is set, so only" if datasets.config.HF_HUB_OFFLINE else ""
        raise DataError(f"{uri}: cannot load {repo} ({_first_line(e)});{offline} the datasets cache "
                        f"({datasets.config.HF_DATASETS_CACHE}) is read: load it there once online") from None
    except Exception as e:  # noqa: BLE001 - an unknown split or config, a missing data set, a bad file
        raise DataError(f"{uri}: cannot load {repo} (config {source.config!r}, split {split!r}): {_first_line(e)}") from None


def _rows(dataset: Any, where: str, head: int | None) -> list[Record]:
    """Rows as plain Python records ("<where>: row <n>", n counted from 1)."""
    if head is not None:
        dataset = dataset.select(range(min(head, len(dataset))))
    return [Record(_without_nulls(row), f"{where}: row {n}") for n, row in enumerate(dataset.to_list(), start=1)]


def _without_nulls(value: Any) -> Any:
    """Arrow gives every struct of a column all the keys any of them has, null where a record had none
    (an ExTES seeker turn {"User": ...} comes back with "AI": None); the readers tell turns apart by the
    keys they have, so a null member is taken as absent, as it was in the records written."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _saved_files(path: Path) -> list[Path]:
    """The files a save_to_disk directory's data is: its json descriptions and the arrow files its
    state.json lists (so cache files that later `map` calls add beside them do not count)."""
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        return [path / "dataset_dict.json", *(f for split in splits for f in _saved_files(path / split))]
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    arrows = [path / entry["filename"] for entry in state.get("_data_files", [])]
    return [path / "dataset_info.json", path / "state.json", *arrows]


def _files_sha256(files: list[Path], *, root: Path | None = None) -> str:
    """sha256 over each file's name (relative to `root`, or its base name) and sha256, in the given order."""
    digest = hashlib.sha256()
    for file in files:
        name = file.relative_to(root).as_posix() if root is not None else file.name
        digest.update(f"{name}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()
