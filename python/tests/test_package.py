"""`pip install ./python`: the shim as a Python package (python/pyproject.toml + setup.py), installed from a
copy laid out as the npm package ships it (python/ beside schema/), and its check of the controller's version."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import pytest
from helpers_train import PROJECT_ROOT, job_spec, read_events, write_job

from peftshim.version import __version__, controller_version_problem

PYTHON_FILES = ["peftshim", "peftmetrics", "pyproject.toml", "setup.py", "requirements.txt", "requirements-eval.txt",
                "requirements-trackers.txt"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package installed with --target (no dependencies: this venv has them) from a copy of the sources."""
    root = tmp_path_factory.mktemp("package")
    for name in PYTHON_FILES:
        source = PROJECT_ROOT / "python" / name
        copy = shutil.copytree if source.is_dir() else shutil.copyfile
        copy(source, root / "python" / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if source.is_dir() else {}))
    (root / "schema").mkdir()
    shutil.copyfile(PROJECT_ROOT / "schema" / "job.schema.json", root / "schema" / "job.schema.json")
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(root / "python")], check=True, capture_output=True, text=True, timeout=300)
    return target


def run_installed(target: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The `peftshim` console script, with only the installed copy importable (not python/ of the checkout)."""
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([str(target / "bin" / "peftshim"), *args], env=environment, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_the_wheel_carries_the_generated_job_schema(installed: Path) -> None:
    shipped = (installed / "peftshim" / "job.schema.json").read_bytes()
    assert shipped == (PROJECT_ROOT / "schema" / "job.schema.json").read_bytes()
    assert (installed / "peftmetrics" / "score.py").is_file()


def test_the_dependencies_are_the_requirements_files(installed: Path) -> None:
    (info,) = installed.glob("peftshim-*.dist-info")
    metadata = Parser().parsestr((info / "METADATA").read_text())
    assert metadata["Version"] == __version__

    def pins(name: str) -> list[str]:
        lines = (PROJECT_ROOT / "python" / name).read_text().splitlines()
        return sorted(line.split("#")[0].strip() for line in lines if line.split("#")[0].strip())

    requires = metadata.get_all("Requires-Dist")
    assert sorted(r for r in requires if "extra ==" not in r) == pins("requirements.txt")
    assert sorted(r.split(";")[0].strip() for r in requires if 'extra == "metrics"' in r) == pins("requirements-eval.txt")
    assert sorted(r.split(";")[0].strip() for r in requires if 'extra == "trackers"' in r) == pins("requirements-trackers.txt")


def test_the_installed_command_validates_with_its_own_schema(installed: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "run", job_spec(tmp_path / "run"))
    result = run_installed(installed, "validate", "--job", str(job), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {job}"
    where = subprocess.run([sys.executable, "-c", "import peftshim.spec as s; print(s.__file__, s.schema_path())"],
                           env={"PYTHONPATH": str(installed)}, cwd=tmp_path, capture_output=True, text=True, check=True)
    module, schema = where.stdout.split()
    assert module.startswith(str(installed)) and schema == str(installed / "peftshim" / "job.schema.json")


def test_a_controller_of_another_major_minor_is_refused_naming_both(installed: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "run", job_spec(tmp_path / "run"))
    result = run_installed(installed, "validate", "--job", str(job), cwd=tmp_path, env={"PEFTCTL_VERSION": "9.4.0"})
    assert result.returncode == 2
    assert result.stderr.strip() == f"peftshim: error: {controller_version_problem({'PEFTCTL_VERSION': '9.4.0'})}"
    assert "peftctl 9.4.0" in result.stderr and f"peftshim {__version__}" in result.stderr
    assert "pip install ./python" in result.stderr and "Traceback" not in result.stderr


def test_train_reports_the_mismatch_as_an_environment_error_event(installed: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job = write_job(run_dir, job_spec(run_dir))
    result = run_installed(installed, "train", "--job", str(job), "--attempt", "1", cwd=tmp_path,
                           env={"PEFTCTL_VERSION": "0.0.1" if __version__.split(".")[:2] != ["0", "0"] else "1.0.0"})
    assert result.returncode == 2, result.stderr
    (event,) = read_events(run_dir)
    assert event["type"] == "error" and event["kind"] == "environment" and not event["retryable"]
    assert "pip install ./python" in event["message"]


@pytest.mark.parametrize("controller", [None, "", __version__, ".".join(__version__.split(".")[:2] + ["99"])])
def test_the_same_major_minor_or_no_controller_starts(controller: str | None) -> None:
    env = {} if controller is None else {"PEFTCTL_VERSION": controller}
    assert controller_version_problem(env) is None


def test_version_is_package_json_s() -> None:
    assert __version__ == json.loads((PROJECT_ROOT / "package.json").read_text())["version"]
