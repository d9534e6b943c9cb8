"""Trainer errors: typed, one line each, naming the fix (the CLI prints them as they are)."""

from __future__ import annotations

from redline.errors import NotFound, RedlineError


class TrainError(RedlineError):
    """Training cannot start or cannot go on (no usable records, a bad checkpoint)."""


class ModelNotAvailable(NotFound):
    """The base model is neither a local directory nor in the local Hugging Face cache; we never download."""
