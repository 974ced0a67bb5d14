"""Errors that are the user's to fix: the CLI prints them as one line, no traceback."""


class UsageError(Exception):
    """Bad input, a bad option, a missing file or an unloadable model."""


class SettingsChanged(UsageError):
    """An output folder holds a run made with other settings."""

    def __init__(self, message: str, folder: str = "", changes: str = "") -> None:
        super().__init__(message)
        self.folder = folder
        self.changes = changes


class MissingExtraError(UsageError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str, module: str) -> None:
        super().__init__(f"{what} needs the '{module}' package: pip install 'instructpt[{extra}]'")
        self.extra = extra


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line user errors."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
