"""The one exception type for bad user input, so the CLI can print it without a traceback,
and the one way to say any error in a line (:func:`first_line`)."""


class SoiInputError(ValueError):
    """Bad input from the user: a name, a file, a column, a value. The message says what."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An error in one line: its type and the first line of its message, at most
    ``limit`` characters (for messages, tags, the spool's manifest and a failed job's
    ``[k/n]`` line). An error that carries another as ``cause`` (a Ray task's error wraps
    the job's own exception) is told by that one."""
    cause = getattr(exc, "cause", None)
    exc = cause if isinstance(cause, BaseException) else exc
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    return (f"{name}: {text[0]}" if text else name)[:limit]
