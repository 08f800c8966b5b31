"""``python -m peftmetrics score --pairs FILE.jsonl [--hyp-field response] [--ref-field reference] [--embeddings FILE]
[--toxicity-command CMD]``

Prints ``{"metrics": {...}, "pairs": N, ...}`` (see score.py) as one JSON line on stdout. Exit codes:
0 scored; 2 bad input (arguments, a missing or unreadable file, a line that is not JSON, a missing
or mistyped field, a malformed vectors file), one ``peftmetrics: FILE:LINE: ...`` line on stderr
and no traceback; 1 METEOR or the toxicity scorer could not run (no java, the jar missing or stopped;
the scorer failed or answered badly), one line likewise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m peftmetrics", description="peftctl's automatic response metrics")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score responses against references (JSON on stdout)")
    score.add_argument("--pairs", required=True, type=Path, help="JSON Lines, one pair per line")
    score.add_argument("--hyp-field", default="response", help="the field holding the response (default: response)")
    score.add_argument("--ref-field", default="reference", help="the field holding the reference(s) (default: reference)")
    score.add_argument("--embeddings", type=Path, default=None,
                       help="word vectors in GloVe text format (glove.6B.300d.txt for paper-comparable values)")
    score.add_argument("--toxicity-command", default=None,
                       help="a toxicity scorer: JSON lines {id, text} on stdin, one score in [0, 1] per line out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # argparse exits 2 on bad arguments
    from peftmetrics.errors import InputError
    from peftmetrics.meteor import MeteorUnavailable
    from peftmetrics.pairs import read_pairs
    from peftmetrics.score import score_pairs
    from peftmetrics.toxicity import ToxicityFailed

    try:
        if args.embeddings is not None and not args.embeddings.is_file():
            raise InputError(f"{args.embeddings}: no such file (--embeddings)")
        pairs = read_pairs(args.pairs, args.hyp_field, args.ref_field)
        result = score_pairs(pairs, args.embeddings, toxicity=args.toxicity_command)
    except InputError as error:
        print(f"peftmetrics: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MeteorUnavailable as error:
        print(f"peftmetrics: METEOR: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ToxicityFailed as error:
        print(f"peftmetrics: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
