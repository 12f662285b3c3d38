"""Choices of `segment`'s options shared by the CLI, the SKS panel's Lib and the task (free of torch and scipy:
the CLI imports it to build its parser)."""
from ..errors import BadInputError

# "auto": a T1 head with its skull given to a model trained on skull-stripped brains is skull-stripped first
# (registration/brain_extraction.py); "off": such a scan is refused, or run as is with force
BRAIN_MASK_CHOICES = ("auto", "off")


def check_brain_mask(value: str) -> str:
    """`value` when it is one of BRAIN_MASK_CHOICES, else the problem and the fix."""
    if value not in BRAIN_MASK_CHOICES:
        raise BadInputError(f"brain_mask '{value}' is not an option.", f"Use one of {', '.join(BRAIN_MASK_CHOICES)}.")
    return value
