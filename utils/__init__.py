"""dnagan utilities: the data pipeline, config flow, errors and the command-line boundary."""

__version__ = "0.3.0"
