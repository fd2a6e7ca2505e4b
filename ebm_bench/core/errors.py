"""Exceptions with messages meant for the person running the suite."""


class ConfigError(ValueError):
    """A configuration value is unknown or invalid; the message names the key."""


class DatasetMissing(FileNotFoundError):
    """A dataset file is not on disk; the message says what to download and where."""


class WeightsMissing(FileNotFoundError):
    """Feature-extractor weights are not on disk and cannot be downloaded here."""
