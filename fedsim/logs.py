"""fedsim's log: one line per message on the console, everything in ``<run folder>/fedsim.log``.

:func:`setup_logging` configures the ``fedsim`` logger (every ``fedsim.*`` module logs
through it): a console handler at the ``log_level`` setting, written through tqdm so a
progress bar stays intact, and a DEBUG file handler in the run folder. The logger does not
propagate to the root logger, so Hydra's own console handler does not print each message
twice. :func:`close_logging` undoes it (the CLI calls it after each run of a sweep).

:class:`FailureReport` is the round hook that reports failed and rejected clients.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from fedsim.errors import ConfigError
from fedsim.hooks import RoundHook, RoundResult, RunContext
from fedsim.safe_io import open_write

LOGGER_NAME = "fedsim"
LOG_FILE = "fedsim.log"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_MARK = "_fedsim_handler"  # set on the handlers setup_logging adds, so a second call replaces them
_saved_propagate: list[bool] = []


class NoFollowFileHandler(logging.FileHandler):
    """A log file appended to without following a link (:mod:`fedsim.safe_io`)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8")

    def _open(self):  # noqa: ANN202 - logging's own hook
        return open_write(self.baseFilename, append=True)


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


class ConsoleFormatter(logging.Formatter):
    """``fedsim: message`` (INFO) or ``fedsim: warning: message``; always one line.

    A multi-line message is joined with `` | ``; an exception adds only its last line.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = _one_line(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message += f" ({type(exc).__name__}: {_one_line(str(exc))})" if str(exc) else f" ({type(exc).__name__})"
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"fedsim: {level}{message}"


class ConsoleHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` through ``tqdm.write`` (keeps a progress bar intact)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001  (logging must never break the run)
            self.handleError(record)


def parse_level(level: str | int) -> int:
    """The ``logging`` level of a ``log_level`` setting (ConfigError naming the choices)."""
    name = str(level).upper()
    if name not in LEVELS:
        raise ConfigError(f"log_level={level}: expected one of {', '.join(LEVELS)}")
    return getattr(logging, name)


def setup_logging(run_dir: Path | str | None, level: str = "INFO") -> logging.Logger:
    """Configure the ``fedsim`` logger for one run; returns it.

    Console: messages at ``level`` and above, one line each. ``run_dir`` given: every
    message (DEBUG and up) is appended to ``<run_dir>/fedsim.log``, multi-line tracebacks
    included. Calling it again (the next run of a sweep) replaces the handlers it added.
    """
    console_level = parse_level(level)
    logger = logging.getLogger(LOGGER_NAME)
    _remove_handlers(logger)
    if not _saved_propagate:
        _saved_propagate.append(logger.propagate)
    logger.propagate = False
    console = ConsoleHandler(level=console_level)
    console.setFormatter(ConsoleFormatter())
    setattr(console, _MARK, True)
    logger.addHandler(console)
    logger.setLevel(console_level)
    if run_dir is not None:
        path = Path(run_dir) / LOG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = NoFollowFileHandler(path)
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
        setattr(file_handler, _MARK, True)
        logger.addHandler(file_handler)
        logger.setLevel(logging.DEBUG)
    return logger


def _remove_handlers(logger: logging.Logger) -> None:
    for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(handler)
        handler.close()


def close_logging() -> None:
    """Remove the handlers :func:`setup_logging` added (closing the log file) and restore propagation."""
    logger = logging.getLogger(LOGGER_NAME)
    _remove_handlers(logger)
    if _saved_propagate:
        logger.propagate = _saved_propagate.pop()
    logger.setLevel(logging.NOTSET)


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


class FailureReport(RoundHook):
    """Logs failed and rejected clients: one WARNING line per round with failures, one summary line at the end.

    Per round (from the row's ``failed``, ``failure_reasons`` and ``rejected``):
    ``round 3: 2 of 5 selected clients failed: partition 0 (injected failure), partition 4
    (rejected: NaN in arrays)``. At the end (WARNING if anything failed, else DEBUG):
    ``3 failed client-rounds, 1 rejected reply (partition 4: NaN in arrays)``. It adds
    nothing to the summary.
    """

    MAX_LISTED = 3

    def __init__(self, logger_name: str = "fedsim.failures") -> None:
        self.log = logging.getLogger(logger_name)
        self.failed = 0
        self.rejected: list[tuple[int, str]] = []

    def on_run_start(self, context: RunContext) -> None:
        """Start counting (a resumed run counts from its first round to run)."""
        self.failed, self.rejected = 0, []

    def on_round_end(self, result: RoundResult) -> None:
        """Log this round's failed clients with their reasons."""
        row = result.row
        failed = [int(c) for c in row.get("failed") or []]
        reasons = {str(k): str(v) for k, v in (row.get("failure_reasons") or {}).items()}
        rejected = {str(k): str(v) for k, v in (row.get("rejected") or {}).items()}
        self.failed += len(failed)
        self.rejected.extend((int(pid), reason) for pid, reason in rejected.items())
        listed = [f"partition {pid} ({self._reason(pid, reasons, rejected)})" for pid in failed]
        listed += [f"partition {pid} (rejected: {reason})" for pid, reason in rejected.items()
                   if int(pid) not in failed]
        if listed:
            selected = len(row.get("selected") or [])
            self.log.warning("round %s: %s of %s selected clients failed: %s", result.server_round,
                             len(listed), selected, ", ".join(listed))

    @staticmethod
    def _reason(pid: int, reasons: dict[str, str], rejected: dict[str, str]) -> str:
        if str(pid) in reasons:
            return reasons[str(pid)]
        if str(pid) in rejected:
            return f"rejected: {rejected[str(pid)]}"
        return "no reason given"

    def summary_line(self) -> str:
        """``3 failed client-rounds, 1 rejected reply (partition 4: NaN in arrays)``."""
        line = f"{_count(self.failed, 'failed client-round', 'failed client-rounds')}, " \
               f"{_count(len(self.rejected), 'rejected reply', 'rejected replies')}"
        if self.rejected:
            shown = [f"partition {pid}: {reason}" for pid, reason in self.rejected[:self.MAX_LISTED]]
            more = len(self.rejected) - len(shown)
            line += f" ({'; '.join(shown)}{f'; {more} more' if more else ''})"
        return line

    def on_run_end(self, summary: dict[str, Any]) -> None:
        """Log the one-line summary; ``summary`` is left as it is."""
        level = logging.WARNING if self.failed or self.rejected else logging.DEBUG
        self.log.log(level, self.summary_line())
