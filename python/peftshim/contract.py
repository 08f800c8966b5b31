"""What the shim shares with the controller (src/): exit codes, the label of unscored tokens, and the
names of data formats and strategy modes.

The controller's side: src/runs/events.ts (ShimExit) reads the exit codes, src/config/schema.ts defines
the formats and strategy modes (schema/job.schema.json carries them here). `python -m peftshim.contract`
prints these values, and test/job-contract.test.ts checks them against the TypeScript side.
"""

from __future__ import annotations

import json

# job.json's schema_version that this shim reads (spec.py migrates older files to it).
JOB_SCHEMA_VERSION = 2

# Exit codes of `python -m peftshim train`.
EXIT_DONE = 0
EXIT_FAILED = 1  # anything unexpected; retried when its error event says so
EXIT_BAD_INPUT = 2  # bad job spec, arguments, data or fingerprint: not retried
EXIT_OOM = 3  # out of memory: the controller retries with a smaller micro-batch
EXIT_NO_SPACE = 4  # no space left (disk or quota) while saving: retried by the next `peftctl run`
EXIT_INTERRUPTED = 75  # stopped by a signal after saving a checkpoint: resumable

# The label of tokens the loss does not score (transformers' and PyTorch's cross-entropy default).
IGNORE_INDEX = -100

# data.format and data.strategy.
FORMATS = ("extes", "esconv", "chat", "alpaca", "sharegpt")
STRATEGY_MODES = ("inline", "none")

if __name__ == "__main__":
    print(json.dumps({
        "exit_codes": {"done": EXIT_DONE, "failed": EXIT_FAILED, "badInput": EXIT_BAD_INPUT, "outOfMemory": EXIT_OOM,
                       "noSpace": EXIT_NO_SPACE, "interrupted": EXIT_INTERRUPTED},
        "job_schema_version": JOB_SCHEMA_VERSION,
        "formats": FORMATS,
        "strategy_modes": STRATEGY_MODES,
    }))
