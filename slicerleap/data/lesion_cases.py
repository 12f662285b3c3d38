"""A lesion-segmentation benchmark on real anatomy: synthetic lesions in the real MNI ICBM152 brain.

Real: the anatomy and its T1 contrast, the 2009a symmetric T1 template, its grey/white-matter
probability maps and its brain mask (the template's non-zero voxels: it ships skull-stripped) from the
nilearn wheel; or (`anatomy="itk-head"`) a second subject and scanner, ITK's example head T1 (2x2x3 mm,
coronal; `itk_examples.py`), skull-stripped by ITK's mask, with its k-means grey/white classes smoothed
into probability maps — so a benchmark can test on anatomy its training never saw.
Simulated (all drawn from `numpy.random.default_rng(seed)`): per-case anatomical variation (a small
affine plus a smooth non-rigid warp of the template), the lesions (1-3 irregular blobs, mostly in
white matter, hypo- or hyper-intense on T1, with texture, an optional necrotic core / bright rim and
oedema halo, partial volume at their edges) and the acquisition (global scale, gamma, bias field,
Rician noise). No patient data.

Geometry: mm and RAS, on the template's field of view and orientation resampled to `spacing_mm`.
Intensities: the template's units (white matter ~220, background 0) before the per-case scale.
Labels (uint8): 0 background, 1 brain (template brain mask, lesion excluded), 2 lesion.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ..io import read_volume, write_volume
from ..io.image_io import volume_to_sitk
from ..segmentation.label_specs import LESION_LABEL
from ..segmentation.slice_data import flags_to_ranges
from ..transforms.resample import resample_to_spacing
from ..volume import Volume
from .itk_examples import itk_example_brain
from .samples import _nilearn_data, mni_t1

LESION_VALUE = 2  # the lesion's value in a case's labels (1 is brain)
LESION_LABELS = [
    {"value": 1, "name": "Brain", "color": "#f2eadb",
     "terminology": {"category": "SCT^123037004^Anatomical Structure", "type": "SCT^12738006^Brain"}},
    {**LESION_LABEL, "value": LESION_VALUE},
]


ANATOMIES = ("mni", "itk-head")


@lru_cache(maxsize=2)
def _template(anatomy: str = "mni") -> tuple[sitk.Image, float]:
    """T1, parenchyma (GM+WM) probability, WM probability and brain mask as one 4-channel image
    (warped in a single pass), with the anatomy's median white-matter intensity."""
    if anatomy == "mni":
        t1 = mni_t1()
        gm, wm = (read_volume(_nilearn_data() / f"mni_icbm152_{t}_tal_nlin_sym_09a_converted.nii.gz").array / 255.0 for t in ("gm", "wm"))
        brain = t1.array > 0  # the template is skull-stripped: non-zero = brain
    elif anatomy == "itk-head":
        t1, tissue = itk_example_brain()  # skull-stripped; tissue 1 = GM, 2 = WM (k-means classes)
        sigma = 0.5 / np.asarray(t1.spacing[::-1]) * 2.0  # hard classes -> maps with a ~1 mm soft edge
        gm, wm = (ndimage.gaussian_filter((tissue.array == v).astype(np.float64), sigma) for v in (1, 2))
        brain = t1.array > 0
    else:
        raise ValueError(f"Unknown anatomy {anatomy!r}; known: {', '.join(ANATOMIES)}")
    channels = [t1.array, gm + wm, wm, brain]
    image = sitk.Compose([volume_to_sitk(t1.with_array(c.astype(np.float32))) for c in channels])
    return image, float(np.median(t1.array[wm > 0.9]))


@lru_cache(maxsize=4)
def _output_grid(spacing_mm: float, anatomy: str = "mni") -> Volume:
    """The anatomy's field of view and orientation at a new isotropic voxel size."""
    reference = mni_t1() if anatomy == "mni" else itk_example_brain()[0]
    return resample_to_spacing(reference, [spacing_mm] * 3, "nearest")


def _smooth_noise(rng, shape, sigma_vox: float, components: int = 1) -> np.ndarray:
    """Gaussian-smoothed white noise, scaled to unit standard deviation, shape (components, *shape)."""
    noise = ndimage.gaussian_filter(rng.standard_normal((components, *shape)), (0, sigma_vox, sigma_vox, sigma_vox), truncate=3)
    return noise / noise.std()


def _smooth_field(rng, shape, spacing_mm: float, sigma_mm: float, components: int = 1) -> np.ndarray:
    """Smooth noise made on a coarse grid (sigma = 3 coarse voxels) and upsampled: cheap for large sigma."""
    coarse = np.maximum(2, np.ceil(np.array(shape) * spacing_mm * 3 / sigma_mm)).astype(int)
    field = _smooth_noise(rng, coarse, 3.0, components)
    return np.stack([ndimage.zoom(c, np.array(shape) / coarse, order=1) for c in field])


def _warp_template(rng, grid: Volume, anatomy: str = "mni") -> np.ndarray:
    """The anatomy pulled through a random smooth displacement then affine onto `grid`: (k, j, i, 4)."""
    template, _ = _template(anatomy)
    ref = volume_to_sitk(grid)  # ITK's LPS space: the random rotation/translation are drawn there directly
    affine = sitk.AffineTransform(3)
    rotation = Rotation.from_euler("xyz", rng.uniform(-6, 6, 3), degrees=True).as_matrix()
    affine.SetMatrix((rotation @ np.diag(rng.uniform(0.92, 1.08, 3))).ravel().tolist())
    affine.SetCenter(ref.TransformContinuousIndexToPhysicalPoint((np.array(ref.GetSize()) - 1) / 2.0))
    affine.SetTranslation(rng.uniform(-4, 4, 3).tolist())
    # smooth displacement (sigma 12 mm) on a 4 mm grid over the field of view; ITK interpolates it
    coarse = Volume.from_geometry(np.zeros(np.ceil(grid.array.shape * grid.spacing[::-1] / 4.0).astype(int) + 1),
                                  [4.0] * 3, grid.origin, grid.directions)
    field = np.moveaxis(_smooth_noise(rng, coarse.array.shape, 3.0, 3), 0, -1)
    field *= rng.uniform(2.0, 4.0) / np.linalg.norm(field, axis=-1).max()  # max displacement 2-4 mm
    field_image = sitk.GetImageFromArray(field, isVector=True)
    field_image.CopyInformation(volume_to_sitk(coarse))
    transform = sitk.CompositeTransform([affine, sitk.DisplacementFieldTransform(field_image)])  # last one acts first
    return sitk.GetArrayFromImage(sitk.Resample(template, ref, transform, sitk.sitkLinear, 0.0))


def _pick_centre(rng, wm, parenchyma, radius, placed, spacing) -> np.ndarray:
    """Voxel index (k, j, i): deep white matter, or (1 in 4) the WM/GM border so the lesion reaches cortex;
    clear of the lesions already `placed` ((centre, radius) pairs) so each stays a separate finding."""
    border = rng.random() < 0.25
    candidates = np.argwhere(((wm > 0.3) & (wm < 0.7) & (parenchyma > 0.95)) if border else (wm > 0.9))
    for _ in range(100):
        centre = candidates[rng.integers(len(candidates))]
        if all(np.linalg.norm(centre - c) * spacing > 1.5 * (radius + r) + 3 for c, r in placed):
            break
    return centre


def _insert_lesion(rng, image, lesion_fraction, parenchyma, wm, wm_level, spacing, placed):
    """Blend one lesion into `image` in place; updates `lesion_fraction` (0..1 per voxel) and `placed`.
    Returns its description."""
    radius = float(np.exp(rng.uniform(np.log(3), np.log(14))))  # equivalent radius, small lesions commoner
    centre = _pick_centre(rng, wm, parenchyma, radius, placed, spacing)
    placed.append((centre, radius))
    lobes = rng.uniform(0.12, 0.35)
    axes = np.exp(rng.normal(0, 0.3, 3))  # ovoid, like plaques along veins
    axes *= radius / np.cbrt(axes.prod() * (1 + 3 * lobes**2))  # lobulation grows the volume by ~(1 + 3 lobes^2)
    halo = rng.uniform(1.0, 3.0) if rng.random() < 0.4 else 0.0  # oedema width, mm
    # box of output voxels that can be touched, sampled on a 2x finer grid for partial volume
    half = int(np.ceil((axes.max() * (1 + 3 * lobes) + 3 * halo) / spacing)) + 1
    lo, hi = np.maximum(centre - half, 0), np.minimum(centre + half + 1, image.shape)
    fine = [np.arange(2 * a, 2 * b) / 2 - 0.25 - c for a, b, c in zip(lo, hi, centre)]
    offset_mm = np.stack(np.meshgrid(*fine, indexing="ij"), -1) * spacing
    rho = np.linalg.norm(offset_mm @ Rotation.random(random_state=rng).as_matrix() / axes, axis=-1)
    fine_shape = rho.shape
    # lobulated, ragged boundary: radius of the unit surface perturbed by coarse and fine smooth noise
    r = rho / (1 + lobes * _smooth_noise(rng, fine_shape, 0.5 * radius / (spacing / 2))[0]
               + 0.04 * _smooth_noise(rng, fine_shape, 1.0 / (spacing / 2))[0]).clip(0.4)
    inside = r < 1
    polarity = -1 if rng.random() < 0.7 else 1  # T1: most lesions (plaques, tumours) are dark
    contrast = rng.uniform(0.2, 0.28) if rng.random() < 0.35 else rng.uniform(0.28, 0.5)
    value = wm_level * (1 + polarity * contrast) * (1 + rng.uniform(0.03, 0.08) * _smooth_noise(rng, fine_shape, 1.5 / (spacing / 2))[0])
    core = radius > 8 and rng.random() < 0.5
    if core:  # necrotic centre (darker), and for bright lesions an enhancing rim
        value *= 1 - rng.uniform(0.2, 0.45) / (1 + np.exp((r - 0.5) / 0.07))
        value *= 1 + (0.15 if polarity > 0 else 0.0) * np.exp(-(((r - 0.85) / 0.1) ** 2))

    def down(x):  # mean over each 2x2x2 block of the fine grid = the output voxel
        return x.reshape(fine_shape[0] // 2, 2, fine_shape[1] // 2, 2, fine_shape[2] // 2, 2).mean((1, 3, 5))

    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    tissue = parenchyma[box] > 0.5  # lesions live in parenchyma: clipped at ventricles and sulci
    if halo:
        oedema = down(np.exp(-np.maximum(r - 1, 0) * axes.mean() / halo) * ~inside)
        image[box] *= 1 - rng.uniform(0.05, 0.12) * oedema * tissue
    f = down(inside) * tissue
    pieces, n = ndimage.label(f > 0)  # clipping can leave islands across a sulcus: keep the main body
    if n > 1:
        tissue &= pieces == np.argmax(np.bincount(pieces.ravel())[1:]) + 1
        f *= tissue
    image[box] = (1 - f) * image[box] + down(inside * value) * tissue
    lesion_fraction[box] = 1 - (1 - lesion_fraction[box]) * (1 - f)
    return {"radius_mm": round(radius, 2), "polarity": "hyper" if polarity > 0 else "hypo", "contrast": round(contrast, 3),
            "necrotic_core": bool(core), "oedema_mm": round(halo, 2), "centre_kji": centre.tolist()}


def _acquisition(rng, image, wm_level, spacing):
    """Scanner variation: gamma, bias field (+-10 %), global scale, then Rician noise (1-3 % of WM)."""
    image = wm_level * (np.maximum(image, 0) / wm_level) ** rng.uniform(0.8, 1.25)
    bias = _smooth_field(rng, image.shape, spacing, 60.0)[0]
    scale = rng.uniform(0.8, 1.2)
    image = image * (1 + rng.uniform(0.03, 0.10) * bias / np.abs(bias).max()) * scale
    sigma = rng.uniform(0.01, 0.03) * wm_level * scale
    return np.hypot(image + sigma * rng.standard_normal(image.shape), sigma * rng.standard_normal(image.shape))


def make_lesion_case(seed: int, spacing_mm: float = 1.5, n_lesions: tuple[int, int] = (1, 3),
                     anatomy: str = "mni") -> tuple[Volume, Volume]:
    """(image, labels) for one case on the anatomy's field of view at `spacing_mm` (isotropic, mm, RAS).
    Labels: 0 background, 1 brain, 2 lesion (lesion fraction >= 0.5); `n_lesions` is an inclusive range.
    labels.metadata["lesions"] describes each inserted lesion. Deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    grid = _output_grid(float(spacing_mm), anatomy)
    warped = _warp_template(rng, grid, anatomy)
    image, parenchyma, wm, brain = warped[..., 0].astype(np.float64), warped[..., 1], warped[..., 2], warped[..., 3] >= 0.5
    wm_level = _template(anatomy)[1]
    fraction, placed = np.zeros(image.shape), []
    lesions = [_insert_lesion(rng, image, fraction, parenchyma, wm, wm_level, spacing_mm, placed)
               for _ in range(rng.integers(n_lesions[0], n_lesions[1] + 1))]
    image = _acquisition(rng, image, wm_level, spacing_mm)
    labels = np.where(fraction >= 0.5, LESION_VALUE, brain).astype(np.uint8)
    name = f"lesion case {seed:03d}" if anatomy == "mni" else f"{anatomy} lesion case {seed:03d}"
    return (grid.with_array(image.astype(np.float32), name=name, modality="MR"),
            grid.with_array(labels, name=f"{name} labels", modality="MR", labels=LESION_LABELS, lesions=lesions,
                            anatomy=anatomy))


def make_tissue_case(seed: int, spacing_mm: float = 1.5) -> tuple[Volume, Volume]:
    """(image, white-matter labelmap) of one subject-like case: the template warped and scanned as in
    `make_lesion_case`, without lesions; labels 1 where the warped WM probability is >= 0.5. Deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    grid = _output_grid(float(spacing_mm))
    warped = _warp_template(rng, grid)
    image = _acquisition(rng, warped[..., 0].astype(np.float64), _template()[1], spacing_mm)
    name = f"tissue case {seed:03d}"
    return (grid.with_array(image.astype(np.float32), name=name, modality="MR"),
            grid.with_array((warped[..., 2] >= 0.5).astype(np.uint8), name=f"{name} white matter", modality="MR"))


def slice_labels(labels: Volume) -> np.ndarray:
    """1 for each K slice (array axis 0) holding any lesion voxel."""
    return (labels.array == LESION_VALUE).any(axis=(1, 2)).astype(np.int8)


def write_lesion_cohort(folder, n_cases: int, first_seed: int = 0, spacing_mm: float = 1.5) -> list[dict]:
    """Write images/case_NNN.nrrd, labels/case_NNN.nrrd and slice_labels.json (inclusive 0-based K ranges
    holding lesion). Returns per case: seed, n_lesions, lesion_ml, image and labels paths."""
    folder = Path(folder)
    cases, ranges = [], {}
    for seed in range(first_seed, first_seed + n_cases):
        image, labels = make_lesion_case(seed, spacing_mm)
        case = f"case_{seed:03d}"
        ranges[case] = {"lesion_slices": flags_to_ranges(slice_labels(labels))}
        cases.append({"seed": seed, "case": case, "n_lesions": len(labels.metadata["lesions"]),
                      "lesion_ml": round(float((labels.array == 2).sum() * np.prod(labels.spacing)) / 1000, 3),
                      "image": str(write_volume(image, folder / "images" / f"{case}.nrrd")),
                      "labels": str(write_volume(labels, folder / "labels" / f"{case}.nrrd"))})
    (folder / "slice_labels.json").write_text(json.dumps(ranges), encoding="utf-8")
    return cases
