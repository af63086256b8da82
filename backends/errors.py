"""The exceptions that cross layers. Their messages are written for the operator."""

from __future__ import annotations


class WhimbrelError(Exception):
    """Something went wrong that the operator should read about; exit code 1."""


class UsageError(WhimbrelError):
    """Bad input (arguments, config, names): one clear line, exit code 2."""
