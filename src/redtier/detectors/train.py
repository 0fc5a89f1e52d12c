"""Rebuild the trained detector artefacts: ``python -m redtier.detectors.train --data DIR``.

``DIR`` is the folder that contains the labelled sets (``xstest/`` and ``pyrit/``).
The artefacts go to the package's ``trained/`` folder unless ``--out`` names another.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from redtier.detectors._learned_model import artefact_path
from redtier.detectors._training import train_heads
from redtier.errors import RedtierError


def main(argv: list[str] | None = None) -> int:
    """Train both heads and write their artefacts; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m redtier.detectors.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="folder that contains xstest/ and pyrit/"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=artefact_path("refusal").parent,
        help="folder to write refusal.json and harmful_compliance.json to "
        "(default: the package's trained/ folder)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = "python -m redtier.detectors.train --data " + shlex.quote(args.data.as_posix())
    try:
        train_heads(args.data, args.out, command=command)
    except RedtierError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
