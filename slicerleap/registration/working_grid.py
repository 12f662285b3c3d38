"""Geometry of deformable registration, in one place. Every method works on a working grid: the fixed
image's field of view with its axes permuted to run closest to R, A, S (so a network sees anatomy in
the orientation it was trained on, whatever the scan's orientation) at an isotropic working spacing.
The moving image (after the affine) is sampled onto it; the result is a displacement field in RAS mm
on that grid, the resampling direction (fixed position x -> moving position x + u(x)), affine included,
so it is valid in physical space for any orientation, spacing and field of view of the two inputs."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..transforms import normalise, resample_to_reference, resample_to_spacing
from ..volume import Volume, reorient_to_ras_axes

NORMALISATION = {"kind": "percentile", "lower": 1.0, "upper": 99.0}


def working_grid(fixed: Volume, spacing_mm: float) -> Volume:
    """The fixed image (float32) resampled on the working grid."""
    return resample_to_spacing(reorient_to_ras_axes(fixed.with_array(fixed.array.astype(np.float32))), [spacing_mm] * 3, "linear")


def sample_affine(moving: Volume, fixed_grid: Volume, affine_ras: np.ndarray, extra_ras: np.ndarray | None = None) -> np.ndarray:
    """Moving intensities at positions A @ (x + extra(x)) for every fixed-grid voxel x (trilinear, zero outside)."""
    ras = fixed_grid.voxel_positions_ras()
    if extra_ras is not None:
        ras = ras + extra_ras
    moving_pos = ras @ affine_ras[:3, :3].T + affine_ras[:3, 3]
    moving_ijk = (moving_pos - moving.ijk_to_ras[:3, 3]) @ np.linalg.inv(moving.ijk_to_ras[:3, :3]).T
    shape = np.array(moving.array.shape[:3][::-1], dtype=np.float64)  # i, j, k sizes
    grid = 2.0 * moving_ijk / np.maximum(shape - 1, 1) - 1.0  # normalised (x=i, y=j, z=k)
    src = torch.from_numpy(np.ascontiguousarray(moving.array, dtype=np.float32))[None, None]
    g = torch.from_numpy(grid.astype(np.float32))[None]
    return F.grid_sample(src, g, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0].numpy()


def working_pair(fixed: Volume, moving: Volume, affine_ras: np.ndarray, spacing_mm: float, device,
                 normalisation: dict = NORMALISATION):
    """(working grid Volume, fixed tensor, affinely aligned moving tensor), tensors (1, 1, k, j, i) in [0, 1]."""
    work = working_grid(fixed, spacing_mm)
    fixed_t = torch.from_numpy(normalise(work.array, normalisation))[None, None].to(device)
    moved = sample_affine(moving.with_array(normalise(moving.array, normalisation)), work, affine_ras)
    return work, fixed_t, torch.from_numpy(moved)[None, None].to(device)


def field_in_ras(ddf: torch.Tensor, work: Volume, affine_ras: np.ndarray) -> Volume:
    """Voxel displacement (1, 3, k, j, i), channel order (dk, dj, di), on the working grid -> the full
    resampling field (k, j, i, 3) in RAS mm, affine included."""
    voxel = ddf.detach()[0].cpu().numpy().transpose(1, 2, 3, 0)[..., ::-1]  # (k, j, i, [di, dj, dk])
    return with_affine(work, voxel @ work.ijk_to_ras[:3, :3].T, affine_ras)


def ddf_on_grid(ddf: torch.Tensor, source: Volume, target: Volume) -> torch.Tensor:
    """A voxel displacement (1, 3, k, j, i), channel order (dk, dj, di), on working grid `source` -> the same
    physical displacement on working grid `target` (another spacing), in `target`'s voxels."""
    voxel = ddf.detach()[0].cpu().numpy().transpose(1, 2, 3, 0)[..., ::-1]
    step_ras = displacement_on_grid(source.with_array((voxel @ source.ijk_to_ras[:3, :3].T).astype(np.float32)), target)
    voxel = (step_ras @ np.linalg.inv(target.ijk_to_ras[:3, :3]).T)[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(voxel.transpose(3, 0, 1, 2), dtype=np.float32))[None].to(ddf.device)


def with_affine(grid: Volume, step_ras: np.ndarray, affine_ras: np.ndarray) -> Volume:
    """The field x -> A(x + step(x)) − x on `grid`: a deformable step (RAS mm, (k, j, i, 3)) found between the
    fixed image and the affinely aligned moving image, followed by the affine A (resampling direction)."""
    x = grid.voxel_positions_ras()
    moving_pos = (x + step_ras) @ affine_ras[:3, :3].T + affine_ras[:3, 3]
    return grid.with_array((moving_pos - x).astype(np.float32), name="displacement")


def displacement_on_grid(field: Volume, grid: Volume) -> np.ndarray:
    """The RAS displacement sampled at every voxel of `grid` (linear interpolation per component)."""
    if field.same_geometry(grid):
        return field.array
    comps = [resample_to_reference(field.with_array(field.array[..., c].astype(np.float32)), grid, "linear", extrapolate=True).array
             for c in range(3)]
    return np.stack(comps, -1)


def on_fixed_grid(field: Volume, fixed: Volume) -> Volume:
    """The field sampled at the fixed image's voxels: the grid every written output lives on."""
    return field if field.same_geometry(fixed) else fixed.with_array(displacement_on_grid(field, fixed).astype(np.float32),
                                                                        name="displacement")


def warp_volume(moving: Volume, field: Volume, grid: Volume, labels: bool = False) -> np.ndarray:
    """The moving volume resampled through `field` onto `grid` (nearest for labels)."""
    extra = displacement_on_grid(field, grid)
    if not labels:
        return sample_affine(moving.with_array(moving.array.astype(np.float32)), grid, np.eye(4), extra)
    values = [v for v in np.unique(moving.array) if v != 0]
    # per-label linear warp + argmax: smoother boundaries than nearest-neighbour, no label mixing
    scores = [np.full(grid.array.shape[:3], 0.5, np.float32)]
    scores += [sample_affine(moving.with_array((moving.array == v).astype(np.float32)), grid, np.eye(4), extra) for v in values]
    return np.asarray([0] + list(values), dtype=moving.array.dtype)[np.argmax(np.stack(scores), 0)]


def jacobian_determinant(field: Volume) -> np.ndarray:
    """det(I + du/dx) of the mapping x -> x + u(x), per voxel (physical derivatives; central differences inside,
    one-sided on the faces, as np.gradient). float32 in torch: on a 1 mm brain grid float64 NumPy needed ~2 GB."""
    u = torch.from_numpy(np.ascontiguousarray(field.array, dtype=np.float32))
    inverse = torch.from_numpy(np.linalg.inv(field.ijk_to_ras[:3, :3]).astype(np.float32))
    # d u_c / d (i, j, k), then to physical axes: du/dx = du/dijk @ inv(ijk_to_ras)
    d_ijk = [torch.stack(torch.gradient(u[..., c], dim=(2, 1, 0)), -1) for c in range(3)]
    a = torch.stack([g @ inverse for g in d_ijk], -2)  # (..., component, physical axis)
    del d_ijk
    a += torch.eye(3)
    return torch.linalg.det(a).numpy()
