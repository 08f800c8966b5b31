"""The one error the CLI turns into exit 2: bad input, named by file and line."""

from __future__ import annotations


class InputError(Exception):
    """Bad input (missing file, a line that is not JSON, a missing field): exit 2, no traceback."""
