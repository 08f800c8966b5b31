"""METEOR 1.5, corpus level, by the jar pycocoevalcap ships (``-l en -norm``, its paraphrase tables).

The protocol is pycocoevalcap's ``Meteor.compute_score``: one ``SCORE ||| ref_1 ||| ... ||| hyp``
line per pair (the jar answers with the pair's statistics), then one ``EVAL ||| stats_1 ||| ...``
line, answered by every segment's score and then the final one, computed by the jar from the summed
statistics: that final value is the corpus METEOR reported (not a mean of segment scores).

Why the jar is driven here rather than through pycocoevalcap's ``Meteor`` class: that class pipes
the jar's stderr and never reads it (a chatty JVM can block on a full pipe), cleans ``|||`` out of
the hypothesis only (a ``|||`` token in a reference would split it into two references), has no
way to report a missing ``java`` or a jar that died except a traceback, and stops the JVM in
``__del__``. This module uses the same jar, working directory (where ``data/paraphrase-en.gz`` is
found), options and input lines, with stderr sent to a file, both sides cleaned the same way, and
the JVM started as early as possible (``MeteorJar.start()``) so it loads while the other metrics run.
The input is the tokens joined by single spaces; the JVM reads it as UTF-8.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


class MeteorUnavailable(Exception):
    """java or the jar is missing, or the jar stopped answering."""


def meteor_dir() -> Path:
    """Where pycocoevalcap's meteor.py lives: the wheel ships meteor-1.5.jar and data/paraphrase-en.gz beside it."""
    try:
        from pycocoevalcap.meteor import meteor as module  # pycocoevalcap.meteor has no __init__.py
    except ImportError:
        raise MeteorUnavailable("pycocoevalcap is not installed (pip install -r python/requirements-eval.txt)") from None
    return Path(module.__file__).resolve().parent


def clean(text: str) -> str:
    """What pycocoevalcap does to a hypothesis before writing it to the jar (here: to references too)."""
    return text.replace("|||", "").replace("  ", " ")


class MeteorJar:
    """One METEOR 1.5 JVM; ``corpus_score`` may be called more than once; ``close()`` stops it."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()

    def start(self) -> "MeteorJar":
        java = shutil.which("java")
        if java is None:
            raise MeteorUnavailable("java is not on PATH (METEOR 1.5 is a Java jar; install a JRE, e.g. default-jre-headless)")
        directory = meteor_dir()
        if not (directory / "meteor-1.5.jar").is_file():
            raise MeteorUnavailable(f"{directory / 'meteor-1.5.jar'} is missing (pip install pycocoevalcap)")
        command = [java, "-Dfile.encoding=UTF-8", "-jar", "-Xmx2G", "meteor-1.5.jar",
                   "-", "-", "-stdio", "-l", "en", "-norm"]
        self._process = subprocess.Popen(command, cwd=directory, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr)
        return self

    def _ask(self, line: str) -> str:
        assert self._process is not None and self._process.stdin and self._process.stdout
        try:
            self._process.stdin.write(f"{line}\n".encode("utf-8"))
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise MeteorUnavailable(f"the METEOR jar stopped: {self._stderr_tail()}") from None
        return self._read()

    def _read(self) -> str:
        assert self._process is not None and self._process.stdout
        answer = self._process.stdout.readline()
        if not answer:
            raise MeteorUnavailable(f"the METEOR jar stopped: {self._stderr_tail()}")
        return answer.decode("utf-8").strip()

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-500:] if text else "no message"

    def corpus_score(self, references: list[list[str]], hypotheses: list[str]) -> tuple[float, list[float]]:
        """(the corpus METEOR, the segment scores); each text is tokens joined by spaces."""
        if not hypotheses:
            return 0.0, []
        if self._process is None:
            self.start()
        stats = []
        for refs, hyp in zip(references, hypotheses):
            stats.append(self._ask(" ||| ".join(("SCORE", " ||| ".join(clean(r) for r in refs), clean(hyp)))))
        first = self._ask(" ||| ".join(["EVAL", *stats]))
        segments = [float(first)] + [float(self._read()) for _ in range(len(stats) - 1)]
        return float(self._read()), segments

    def close(self) -> None:
        if self._process is not None:
            try:
                if self._process.stdin:
                    self._process.stdin.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
            if self._process.stdout:
                self._process.stdout.close()
            self._process = None
        self._stderr.close()

    def __enter__(self) -> "MeteorJar":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


