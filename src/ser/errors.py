"""Errors that mean 'the user asked for something that cannot work' (one clear line, exit 2)."""


class ConfigError(ValueError):
    """A configuration choice that cannot work (the message names the option)."""
