"""The one thing pyproject.toml cannot say: the job schema lives at <root>/schema/job.schema.json (written
by `npm run schema`, read there in a checkout), outside python/, so the wheel's copy is taken at build
time into peftshim/, where spec.schema_path finds an installed shim's."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SCHEMA = Path(__file__).resolve().parent.parent / "schema" / "job.schema.json"


class BuildPyWithSchema(build_py):
    def run(self) -> None:
        super().run()
        if not SCHEMA.is_file():
            raise SystemExit(f"{SCHEMA} is missing: build from a peftctl checkout or package (python/ beside schema/)")
        shutil.copyfile(SCHEMA, Path(self.build_lib) / "peftshim" / "job.schema.json")


setup(cmdclass={"build_py": BuildPyWithSchema})
