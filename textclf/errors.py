"""The one exception type for mistakes a user can fix; the CLI turns it into exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TextclfError(Exception):
    """A problem with the user's input (path, column, label, config, model dir).

    The message is a single line that names the fix; the CLI prints it without a traceback.
    """

    exit_code = 2


class TrainingDiverged(TextclfError):
    """The loss became NaN or infinite; its own exit code (3) tells it apart from bad input."""

    exit_code = 3


class ServiceFailed(TextclfError):
    """A server process ended on its own (a crash, not bad input): exit code 1."""

    exit_code = 1


def first_line(e: BaseException) -> str:
    """An exception's message as one line (its type's name when it has none), for an error that names its cause."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
