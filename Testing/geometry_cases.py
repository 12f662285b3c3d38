"""Random image geometries for property tests: oblique, anisotropic, mirrored, off-origin."""
import numpy as np
from scipy.spatial.transform import Rotation

from slicerleap import Volume


def random_geometry_volume(rng: np.random.Generator, dtype=np.int16) -> Volume:
    # float32-exact values: NIfTI stores geometry in float32, so exact inputs isolate our own errors
    spacing = np.float32(rng.uniform(0.3, 5.0, 3)).astype(np.float64)
    origin = np.float32(rng.uniform(-300, 300, 3)).astype(np.float64)
    rotation = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()
    if rng.random() < 0.5:  # negative determinant: a mirrored (left-handed) voxel grid
        rotation[:, int(rng.integers(3))] *= -1
    if rng.random() < 0.2:  # axis-aligned permutations are common in real scans
        rotation = np.eye(3)[:, rng.permutation(3)] * rng.choice([-1, 1], 3)
    shape = tuple(int(s) for s in rng.integers(2, 9, 3))
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    array = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype) if info else rng.normal(size=shape).astype(dtype)
    return Volume.from_geometry(array, spacing, origin, rotation)
