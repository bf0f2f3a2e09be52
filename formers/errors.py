"""Typed errors. Every message says what was wrong and how to fix it.

The command line catches `FormersError`, prints its message on one line and exits 1.
"""


class FormersError(Exception):
    """Base class of every error formers raises on purpose."""


class ConfigError(FormersError, ValueError):
    """A config or recipe field is unknown, ill-typed or out of range."""


class TokenOutOfVocabError(FormersError, ValueError):
    """A token id is negative or not below the model's vocabulary size."""


class SequenceTooLongError(FormersError, ValueError):
    """A sequence is longer than the model's position limit."""


class CheckpointError(FormersError, OSError):
    """A checkpoint folder is missing, incomplete or corrupt."""


class ShapeMismatchError(FormersError, ValueError):
    """Weights being loaded do not fit the model: lists missing, unexpected and mismatched keys."""


class NonFiniteLossError(FormersError, FloatingPointError):
    """The loss became NaN or infinite; training stopped before applying the update."""


class DataError(FormersError, ValueError):
    """Input data is missing, empty or malformed."""


class AttentionFitError(ConfigError):
    """An attention kind's window, block or projection size does not fit the sequence it is given."""


class ImageInputError(FormersError, ValueError):
    """Pixel values do not fit an image model: rank, channel count, size or dtype."""
