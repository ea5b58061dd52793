"""Errors a user can cause and fix. The CLI prints their message as one line and exits with code 2."""


class SlimlabError(Exception):
    """Bad input: a config, a file, a name. The message names the field or file and what was expected."""


class ConfigError(SlimlabError):
    """A field of the experiment file is missing, unknown or of the wrong type or value."""


class UnknownNameError(SlimlabError):
    """A dataset, model or treatment name that is not registered. The message lists the known ones."""

    def __init__(self, what: str, name: str, known: list[str], where: str | None = None):
        prefix = f"`{where}`: " if where else ""
        super().__init__(f"{prefix}unknown {what} {name!r}; known: {', '.join(sorted(known))}")
        self.name = name
        self.known = sorted(known)


class DataFileError(SlimlabError):
    """A data or model file is missing, unreadable or not what it should be."""


class TrainingDivergedError(Exception):
    """The loss became NaN or infinite. Not a user error: the trial is recorded as failed."""
