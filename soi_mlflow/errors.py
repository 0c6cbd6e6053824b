"""The one exception type for bad user input, so the CLI can print it without a traceback."""


class SoiInputError(ValueError):
    """Bad input from the user: a name, a file, a column, a value. The message says what."""
