"""How the zoo prints: one line per log record, no broken progress bars, one rank under torchrun.

- :func:`setup_logging` (the ``zoo`` command) puts one handler on the root logger. A record that a
  library's own handler already printed (huggingface_hub installs one and still propagates) is not
  printed again. Under torchrun (``RANK`` set) ranks other than 0 log warnings and errors only,
  prefixed with their rank, and their standard output is silenced.
- :func:`progress_logging` wraps a tqdm loop (training, encoding) in tqdm's
  ``logging_redirect_tqdm``, so log lines are written above the bar instead of into it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

FORMAT = "%(levelname)s %(name)s: %(message)s"


def rank() -> int:
    """This process's rank under torchrun (``RANK``), 0 otherwise."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


class _PrintedElsewhere(logging.Filter):
    """Drop records that a handler of their own logger (or a parent below the root) has printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            if logger.handlers:
                return False
            if not logger.propagate:
                return True
            logger = logger.parent
        return True


class _ZooHandler(logging.StreamHandler):
    """The zoo command's handler (one per process: a second setup replaces it)."""


def setup_logging(verbose: bool = False) -> None:
    r = rank()
    handler = _ZooHandler()
    handler.setFormatter(logging.Formatter(FORMAT if r == 0 else f"[rank {r}] {FORMAT}"))
    handler.addFilter(_PrintedElsewhere())
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _ZooHandler)] + [handler]
    root.setLevel(logging.WARNING if r != 0 else logging.DEBUG if verbose else logging.INFO)
    if r != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - results and tables are printed by rank 0


@contextlib.contextmanager
def progress_logging() -> Iterator[None]:
    """Log lines go above the tqdm bars while the block runs (also usable as a decorator)."""
    from tqdm.contrib.logging import logging_redirect_tqdm
    with logging_redirect_tqdm(loggers=[logging.getLogger()]):
        yield
