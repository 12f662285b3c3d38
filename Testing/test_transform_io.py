"""Displacement fields on disk: ITK .h5 and vector volumes keep the RAS resampling semantics."""
import numpy as np
import SimpleITK as sitk

from phantoms import sphere_phantom
from slicerleap.io import read_displacement, write_displacement_transform
from slicerleap.io.transform_io import sitk_transform_to_ras_matrix

OBLIQUE = np.array([[0.0, -0.6, 0.8], [1.0, 0.0, 0.0], [0.0, 0.8, 0.6]])
LPS = np.array([-1.0, -1.0, 1.0])


def test_h5_transform_maps_fixed_points_like_the_ras_field(tmp_path):
    grid = sphere_phantom(10, spacing=(1.5, 2.0, 2.5), directions=OBLIQUE)
    field = grid.with_array(np.random.default_rng(1).normal(0, 3, grid.array.shape + (3,)))
    transform = sitk.ReadTransform(str(write_displacement_transform(field, tmp_path / "t.h5")))
    for ijk in [(2, 3, 4), (7, 1, 5)]:
        x = (grid.ijk_to_ras @ np.array([*ijk, 1.0]))[:3]
        mapped_lps = np.array(transform.TransformPoint(tuple(x * LPS)))
        np.testing.assert_allclose(mapped_lps * LPS - x, field.array[ijk[2], ijk[1], ijk[0]], atol=1e-6)


def test_vector_volume_round_trip(tmp_path):
    grid = sphere_phantom(6, directions=OBLIQUE)
    field = grid.with_array(np.random.default_rng(2).normal(0, 1, grid.array.shape + (3,)))
    back = read_displacement(write_displacement_transform(field, tmp_path / "d.nrrd"))
    np.testing.assert_allclose(back.array, field.array, atol=1e-5)
    np.testing.assert_allclose(back.ijk_to_ras, field.ijk_to_ras, atol=1e-9)


def test_affine_lps_transform_to_ras_matrix():
    t = sitk.AffineTransform(3)
    t.SetTranslation((1.0, 2.0, 3.0))  # LPS mm
    m = sitk_transform_to_ras_matrix(t)
    np.testing.assert_allclose(m[:3, 3], [-1.0, -2.0, 3.0])
