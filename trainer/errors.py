"""Trainer errors: typed, one line each, naming the fix (the CLI prints them as they are)."""

from __future__ import annotations

from redline.errors import NotFound, RedlineError


class TrainError(RedlineError):
    """Training cannot start or cannot go on (no usable records, a bad checkpoint)."""


class NothingToLearn(TrainError):
    """The hindsight probe found that the model fixes (almost) none of its mistakes when shown the feedback:
    self-distillation could teach it nothing, so no night is spent on it."""


class ModelNotAvailable(NotFound):
    """The base model is neither a local directory nor in the local Hugging Face cache; we never download."""
