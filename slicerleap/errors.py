"""Errors the user sees. Each names the problem and the fix, so a clinician can act on it."""
from __future__ import annotations


class SlicerLeapError(Exception):
    """Base class: `problem` says what is wrong, `fix` says what to do about it."""

    def __init__(self, problem: str, fix: str = ""):
        self.problem = problem
        self.fix = fix
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        return f"{self.problem} Fix: {self.fix}" if self.fix else self.problem


class BadInputError(SlicerLeapError):
    """The inputs (images, parameters, files) cannot be processed as given."""


class ModelError(SlicerLeapError):
    """A model is missing, unknown, or its weights fail verification."""


class MissingDependencyError(SlicerLeapError):
    """An optional package needed for this feature is not installed."""


class JobCancelled(Exception):
    """Raised inside a worker when the user asked to cancel."""
