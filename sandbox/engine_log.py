"""Flower's and Ray's own logs of a simulated run go to ``engine.log`` in the run folder, not the console.

When a simulated site fails, Flower logs a whole Ray traceback for every message it could not
deliver: thousands of identical lines for a short trial. ``sandbox run`` shows each distinct site
error once (from the report); the engine's lines are kept, complete, in ``<run folder>/engine.log``.
With ``--verbose`` they go to both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENGINE_LOGGERS = ("flwr", "ray")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def engine_log(path: Path, *, also_console: bool = False) -> Iterator[Path]:
    """Send the ``flwr`` and ``ray`` loggers to ``path`` (INFO and up) while the block runs.

    Without ``also_console`` their own console handlers are detached for the block and the
    records do not propagate to the root logger. Every logger is restored afterwards.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    saved = []
    for name in ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.level, logger.propagate))
        if not also_console:
            for existing in list(logger.handlers):
                logger.removeHandler(existing)
            logger.propagate = False
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield path
    finally:
        for logger, handlers, level, propagate in saved:
            logger.removeHandler(handler)
            for existing in handlers:
                if existing not in logger.handlers:
                    logger.addHandler(existing)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()
