import os
import tempfile

import numpy as np
import pytest

# user-registered models from tests go to a throw-away home, never the developer's ~/.slicerleap
os.environ.setdefault("SLICERLEAP_HOME", tempfile.mkdtemp(prefix="slicerleap-test-home-"))


@pytest.fixture
def scene_ctx():
    """A fresh real MRML scene (slicer-core) with the module logics wired."""
    from slicerleap.scene import new_scene_context

    return new_scene_context()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
