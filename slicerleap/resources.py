"""Where the extension's Resources/ folder (catalog, schema, bundled weights, terminology) and the
user's writable home (imported and trained models) are."""
from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    """Resources/ beside the engine: the repository root in a checkout, the module folder in an
    installed Slicer extension (the CMake build installs slicerleap/ and Resources/ side by side)."""
    env = os.environ.get("SLICERLEAP_RESOURCES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "Resources"


def user_home() -> Path:
    """Writable per-user folder (default ~/.slicerleap; SLICERLEAP_HOME overrides)."""
    home = Path(os.environ.get("SLICERLEAP_HOME", Path.home() / ".slicerleap"))
    home.mkdir(parents=True, exist_ok=True)
    return home
