"""The shim's version and the check that it was started by a matching peftctl.

__version__ is package.json's version (test/cli/python-package.test.ts checks they are equal; pyproject.toml
reads it from here). The controller passes its own version in $PEFTCTL_VERSION (src/shim.ts, shimEnv); a
shim of another major.minor refuses to start, before torch loads, rather than read a job.json or write
events the controller may not understand. The check is here, not in the controller, because only the
shim knows which copy of itself Python imported (PYTHONPATH, an installed package, an image's).
"""

from __future__ import annotations

import os
from typing import Mapping

__version__ = "0.1.0"


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.strip().split(".")[:2])


def controller_version_problem(env: Mapping[str, str] | None = None) -> str | None:
    """None when $PEFTCTL_VERSION is unset (the shim run by hand) or has this shim's major.minor."""
    controller = (os.environ if env is None else env).get("PEFTCTL_VERSION")
    if not controller or _major_minor(controller) == _major_minor(__version__):
        return None
    return (f"peftctl {controller} started peftshim {__version__} (a different major.minor): install the shim "
            f"of this peftctl on this host with `pip install ./python` from peftctl {controller}'s package or "
            "checkout, or point PEFTCTL_PYTHON at a Python that has it")
