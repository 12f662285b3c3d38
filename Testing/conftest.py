import os

import numpy as np
import pytest

os.environ.setdefault("SLICERLEAP_HOME", os.path.join(os.path.dirname(__file__), ".slicerleap-home-test"))


@pytest.fixture
def scene_ctx():
    """A fresh real MRML scene (slicer-core) with the module logics wired."""
    from slicerleap.scene import new_scene_context

    return new_scene_context()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
