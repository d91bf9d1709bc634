"""Errors a user can cause. The CLI turns every EnasError into one line `error: ...` and exit 2."""


class EnasError(Exception):
    """Bad input from the user: a file, an arc string, a config value."""


class ArchError(EnasError, ValueError):
    """An architecture that does not belong to its search space."""


class ConfigError(EnasError, ValueError):
    """An unknown config key or a value of the wrong type or range."""


class DataError(EnasError):
    """Missing, truncated, unreadable or altered data files."""


class CheckpointError(EnasError):
    """A run directory or checkpoint that cannot be read or resumed."""


class WriteError(EnasError):
    """A run directory that cannot be written: read-only, not a directory, a symbolic link, a full disk."""


class AlreadyFinished(Exception):
    """--resume on a run that has nothing left to do: the CLI prints the message and exits 0, writing nothing."""


class Diverged(EnasError):
    """Training whose loss stopped being finite: the checkpoint is saved, the settings need changing."""
