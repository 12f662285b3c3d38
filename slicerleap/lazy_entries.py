"""String registries ("module:attribute") resolved on first use, so a lower layer can name what a higher layer
defines without importing it (the task table, the architecture table) and a worker imports only what it runs."""
from __future__ import annotations

import importlib


def load_entry(entry: str):
    """'package.module:name' -> the object."""
    module_name, attribute = entry.split(":")
    return getattr(importlib.import_module(module_name), attribute)
