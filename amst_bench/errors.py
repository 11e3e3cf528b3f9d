"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class UserError(Exception):
    """A mistake in what the user asked for (bad flag, unknown name, unusable path)."""


class UnsupportedDataset(UserError):
    """A method cannot run on a dataset (e.g. PMR with three modalities); never silently substituted."""


class Interrupted(Exception):
    """Ctrl-C during a grid: carries what was kept, so the CLI can say it and how to resume."""

    def __init__(self, message: str):
        super().__init__(message)
