"""Setting an environment variable for the length of a block, restoring what was there before."""
from __future__ import annotations

import os
from contextlib import contextmanager


@contextmanager
def temporary_environment(name: str, value: str):
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
