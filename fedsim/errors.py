"""Errors a user can fix by changing a setting.

A :class:`ConfigError` is turned into a one-line message and exit code 2 by the CLI,
before any training starts.
"""


class ConfigError(ValueError):
    """An invalid user setting; the message names the setting and the fix."""
