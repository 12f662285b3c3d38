"""Synthetic phantoms for unit tests (accuracy claims use real anatomy, in benchmarks/)."""
import numpy as np

from slicerleap import Volume


def sphere_phantom(size: int = 32, spacing=(2.0, 2.0, 2.0), seed: int = 0, directions=None, origin=(-30.0, -20.0, 10.0)) -> Volume:
    """Two overlapping 'tissues' (a large sphere with a bright core) plus mild noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:size, :size, :size].astype(np.float32)
    c = (size - 1) / 2.0
    r = np.sqrt((x - c) ** 2 + (y - c * 0.9) ** 2 + (z - c * 1.1) ** 2)
    image = np.where(r < size * 0.38, 100.0, 10.0) + np.where(r < size * 0.18, 80.0, 0.0)
    image += rng.normal(0, 3.0, image.shape)
    return Volume.from_geometry(image.astype(np.float32), spacing, origin, directions, {"name": "phantom"})


def phantom_labels(volume: Volume) -> Volume:
    a = volume.array
    labels = np.zeros(a.shape, np.uint8)
    labels[a > 55] = 1
    labels[a > 140] = 2
    return volume.with_array(labels, name="phantom labels")


def blob_case(seed: int, shape=(16, 40, 40), spacing=(1.5, 1.5, 3.0), directions=None):
    """Noisy background with one bright ellipsoid 'lesion' (unit-test phantom, not anatomy)."""
    r = np.random.default_rng(seed)
    image = (r.normal(0.3, 0.05, shape)).astype(np.float32)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    c = r.uniform([4, 10, 10], [shape[0] - 4, shape[1] - 10, shape[2] - 10])
    lesion = (zz - c[0]) ** 2 / 6 + (yy - c[1]) ** 2 / 25 + (xx - c[2]) ** 2 / 25 < 1
    image[lesion] += 0.6
    vol = Volume.from_geometry(image, spacing=spacing, origin=(-30, -30, -20), directions=directions)
    return vol, vol.with_array(lesion.astype(np.uint8))


def organ_lesion_phantom(seed: int = 0, size: int = 32):
    """(image, labels) arrays (K, J, I): an 'organ' sphere (label 1) holding a bright 'lesion' (label 2) at a
    random place inside it, on a noisy background (unit-test phantom, not anatomy)."""
    r = np.random.default_rng(seed)
    k, j, i = np.mgrid[:size, :size, :size].astype(np.float32)
    centre = size / 2 + r.uniform(-2, 2, 3)
    organ = (k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2 < (0.35 * size) ** 2
    spot = centre + r.uniform(-0.15, 0.15, 3) * size
    lesion = (k - spot[0]) ** 2 + (j - spot[1]) ** 2 + (i - spot[2]) ** 2 < r.uniform(2.5, 4.0) ** 2
    labels = np.where(lesion & organ, 2, organ.astype(np.int16)).astype(np.int16)
    image = np.choose(labels, [100.0, 400.0, 700.0]) + r.normal(0, 20, labels.shape)
    return image.astype(np.int16), labels
