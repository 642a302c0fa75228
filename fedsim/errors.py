"""Errors a user can fix by changing a setting.

A :class:`ConfigError` is turned into a one-line message and exit code 2 by the CLI,
before any training starts.
"""

import sys
from collections.abc import Callable


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its class name if it has none), for one-line errors."""
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


class ConfigError(ValueError):
    """An invalid user setting; the message names the setting and the fix."""


class DataError(ConfigError):
    """A dataset file that cannot be used (corrupt, truncated, wrong format, unsafe).

    A :class:`ConfigError`, so the CLI reports it in one line and exits 2; the message
    names the file and what is wrong with it.
    """


NON_FINITE = "NaN or inf values"
"""The phrase a rejected reply's reason holds when it carried NaN or inf (the divergence guard looks for it)."""


class RunDiverged(RuntimeError):
    """Training diverged (a non-finite loss or model); the CLI stops with exit code 3.

    The records of every round up to the one that diverged are kept.
    """

    exit_code = 3


class RunFailed(RuntimeError):
    """A run a study script launched stopped with an error; the run has already said why.

    :func:`run_script` adds one line naming the exit code and exits with it, instead of a
    traceback over the run's own message.
    """

    def __init__(self, exit_code: int):
        super().__init__(f"a fedsim run stopped with exit code {exit_code}; its message is above")
        self.exit_code = exit_code


def run_script(main: Callable[[], object], prog: str) -> int:
    """Run a study script's ``main``; a ConfigError becomes one line on stderr and exit code 2.

    For the scripts under ``experiments/`` (the CLI has its own handler): a setting to fix, or
    a study folder another script holds, is said in one line, not a traceback; a launched run
    that failed (:class:`RunFailed`) in one line after the run's own, with the run's exit code.
    """
    try:
        main()
    except ConfigError as exc:
        print(f"{prog}: {first_line(exc)}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
