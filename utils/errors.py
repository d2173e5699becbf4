"""User-facing errors: raised anywhere, caught once in main(), printed as one line, exit code 2."""


class DnaganError(Exception):
    """An error the user can act on (bad file, flag, config or checkpoint)."""


class InputError(DnaganError):
    """A sequence, config or data file that cannot be used as given."""


class ConfigError(DnaganError):
    """An unknown config key, a wrong type or a bad flag value."""


class CheckpointError(DnaganError):
    """A checkpoint that is missing, corrupt or from an incompatible run."""


class TrainingError(DnaganError):
    """Training cannot go on (a NaN or infinite loss); the last good checkpoint is kept."""
