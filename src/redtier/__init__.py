"""redtier: adversarial testing for language models of any size.

The packages follow the concepts of a scan:

- ``catalog``: the models redtier knows, their size and memory needs.
- ``backends``: model runtimes that load a model and generate text.
- ``probes``: attack prompts, the transforms that rewrite them, and importers.
- ``detectors``: judges that score a model output and explain the score.
- ``store``: the SQLite (or other SQLAlchemy) record of runs and attempts.
- ``scan``: the harness that plans attempts, generates, judges and stores.
- ``reports``: summaries, confidence intervals and exports.
- ``cli``: the ``redtier`` command.
"""

__version__ = "0.1.0"

from redtier.api import load_model  # noqa: E402 - needs __version__ defined first

__all__ = ["__version__", "load_model"]

