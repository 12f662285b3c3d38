"""Deformable registration of real brains: classical baselines, VoxelMorph, TM-DCA, TM-DCA + NIO, with and
without the implicitly solved regulariser — all in one script, on the same pairs.

Data (real anatomy, nothing downloaded):
- MNI ICBM152 2009a T1 template (nilearn wheel, 1 mm), GM/WM from its probability maps (p > 0.5);
- the head T1 of ITK's k-means example (Debian insighttoolkit5-examples, 2x2x3 mm, coronal acquisition),
  skull-stripped with ITK's mask, GM/WM from ITK's k-means classes (not expert labels).
Pairs:
- inter-subject: ITK brain -> MNI and MNI -> ITK brain (different subjects, scanners, resolutions and
  orientations; a real registration problem, unlike the networks' training data for the ITK brain);
- known fields: each brain against a copy of itself warped by a smooth random diffeomorphism (up to
  `--max-mm`), with intensity changes, so the true displacement is known (MNI copies are close to the
  networks' training distribution — they were trained on deformed MNI copies — the ITK copies are not).
Metrics, on the fixed image's own grid: Dice of GM/WM propagated from the moving image, HD95 (mm), mean
field error in the fixed brain (mm, known-field pairs), % voxels with det J <= 0, SD of log det J,
wall time of the registration itself on this machine's CPU (2 cores): "time" includes the pair's affine
(computed once and shared by all methods), "deformable" is the method's own step. The MNI template is
used at 2 mm, the scale of the ITK brain.

Methods: affine only (SimpleITK, Mattes MI); SimpleITK B-spline (affine + B-spline FFD, 10 mm grid,
Mattes MI, LBFGSB 40 iterations, 3 levels, 10/3/1 % of voxels sampled); SimpleITK diffeomorphic demons (affine + demons on histogram-matched images at 2 mm);
direct optimisation of the field (ours, LNCC + diffusion, 2 levels, 2.5 mm); VoxelMorph, TM-DCA and
TM-DCA (implicit regulariser) as bundled (network only); the same + NIO (`--nio` steps); the same + refinement
of the network's field (`--refine` steps, folding penalty; instance_optimisation.py; "+refine90": 90 steps).

    python benchmarks/registration_brains.py [--nio 40] [--seeds 1] [--table]
    python benchmarks/registration_brains.py --nio-curve      # Dice vs NIO steps and step size
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from slicerleap.data import mni_t1, mni_tissue_labels
from slicerleap.data.itk_examples import itk_example_brain
from slicerleap.io.image_io import lps_vectors_to_ras, volume_to_sitk
from slicerleap.registration.affine import affine_register
from slicerleap.registration.field_metrics import field_metrics, label_agreement
from slicerleap.registration.instance_optimisation import InstanceOptimisationConfig, optimise_displacement
from slicerleap.registration.network_registration import register_with_network
from slicerleap.registration.random_deformation import random_displacement
from slicerleap.registration.working_grid import (displacement_on_grid, jacobian_determinant, sample_affine, warp_volume,
                                                  with_affine, working_grid)
from slicerleap.transforms import resample_to_spacing
from slicerleap.volume import Volume

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "registration_results.json"
MODELS = {"voxelmorph": "brain-voxelmorph@1.0.0", "tm-dca": "brain-tm-dca@1.0.0", "tm-dca-implicit": "brain-tm-dca-implicit@1.0.0"}


# -- pairs --------------------------------------------------------------------------------------------
def known_field_pair(image: Volume, labels: Volume, max_mm: float, seed: int):
    """fixed = image warped by a random field d (fixed(x) = image(x + d(x))); moving = image. The true
    resampling field fixed -> moving is d. Returns fixed, fixed labels, moving, moving labels, d (RAS mm)."""
    grid = working_grid(image, 2.0)
    g = torch.Generator().manual_seed(seed)
    ddf = random_displacement(grid.array.shape, max_mm / 2.0, generator=g)
    voxel = ddf[0].numpy().transpose(1, 2, 3, 0)[..., ::-1]
    coarse = grid.with_array((voxel @ grid.ijk_to_ras[:3, :3].T).astype(np.float32))
    truth = image.with_array(displacement_on_grid(coarse, image).astype(np.float32))  # on the image's own grid
    return (*warped_copy(image, labels, truth, seed), image, labels, truth)


def warped_copy(image: Volume, labels: Volume, truth: Volume, seed: int) -> tuple[Volume, Volume]:
    """The image and its labels pulled through the known field `truth` (on the image's grid), the image with a gamma
    change and 1 % noise so intensities do not match exactly."""
    rng = np.random.default_rng(seed)
    warped = sample_affine(image, image, np.eye(4), truth.array)
    warped = (np.clip(warped, 0, None) ** rng.uniform(0.8, 1.25)) * (warped > 0)
    warped = warped + rng.normal(0, 0.01 * warped.max(), warped.shape) * (warped > 0)
    fixed = image.with_array(warped.astype(np.float32), name=f"{image.metadata.get('name')} warped")
    return fixed, image.with_array(warp_volume(labels, truth, image, labels=True))


def pairs(seeds: int, max_mm: float):
    # the template at 2 mm, the scale of the ITK brain (2x2x3 mm): 8x cheaper to warp and score
    mni = resample_to_spacing(mni_t1(), [2.0] * 3)
    mni_labels = resample_to_spacing(mni_tissue_labels(), [2.0] * 3, "nearest")
    itk, itk_labels = itk_example_brain()
    out = {"ITK->MNI": (mni, mni_labels, itk, itk_labels, None), "MNI->ITK": (itk, itk_labels, mni, mni_labels, None)}
    for s in range(seeds):
        out[f"MNI known field {s}"] = known_field_pair(mni, mni_labels, max_mm, seed=100 + s)
        out[f"ITK known field {s}"] = known_field_pair(itk, itk_labels, max_mm, seed=200 + s)
    return out


# -- classical baselines (SimpleITK) -------------------------------------------------------------------
def _aligned_on_grid(fixed: Volume, moving: Volume, affine: np.ndarray, spacing: float):
    grid = working_grid(fixed, spacing)
    aligned = grid.with_array(sample_affine(moving.with_array(moving.array.astype(np.float32)), grid, affine))
    return grid, sitk.Cast(volume_to_sitk(grid), sitk.sitkFloat32), sitk.Cast(volume_to_sitk(aligned), sitk.sitkFloat32)


def _sitk_field_ras(transform, reference: sitk.Image) -> np.ndarray:
    field = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, reference.GetSize(), reference.GetOrigin(),
                                              reference.GetSpacing(), reference.GetDirection())
    return lps_vectors_to_ras(sitk.GetArrayFromImage(field))


def bspline(fixed: Volume, moving: Volume, affine: np.ndarray) -> Volume:
    grid, f, m = _aligned_on_grid(fixed, moving, affine, 2.0)
    mesh = [max(1, int(round(sz * sp / 10.0))) for sz, sp in zip(f.GetSize(), f.GetSpacing())]
    tx = sitk.BSplineTransformInitializer(f, mesh)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    # ITK's B-spline metric gradient costs ~0.1 ms per sample here (12 s per evaluation at 10 % of a 2 mm
    # brain): fewer samples at the finer levels keep it to about a minute per pair
    reg.SetMetricSamplingPercentagePerLevel([0.1, 0.03, 0.01], seed=3)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=40, maximumNumberOfFunctionEvaluations=80)
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SetInitialTransform(tx, inPlace=True)
    reg.Execute(f, m)
    return with_affine(grid, _sitk_field_ras(tx, f), affine)


def demons(fixed: Volume, moving: Volume, affine: np.ndarray, spacing_mm: float = 2.0) -> Volume:
    """Histogram-matched diffeomorphic demons, 3 levels x 100 iterations, on the fixed image at `spacing_mm`."""
    grid, f, m = _aligned_on_grid(fixed, moving, affine, spacing_mm)
    m = sitk.HistogramMatching(m, f, 256, 7, True)
    flt = sitk.DiffeomorphicDemonsRegistrationFilter()
    flt.SetNumberOfIterations(100)
    flt.SetStandardDeviations(1.5)
    field = sitk.Image(f.GetSize(), sitk.sitkVectorFloat64)
    field.CopyInformation(f)
    for shrink in (4, 2, 1):  # coarse to fine
        fs, ms = (sitk.Shrink(img, [shrink] * 3) if shrink > 1 else img for img in (f, m))
        field = sitk.Resample(field, fs, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
        field = flt.Execute(fs, ms, field)
    field = sitk.Resample(field, f, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    return with_affine(grid, lps_vectors_to_ras(sitk.GetArrayFromImage(field)), affine)


# -- one registration, measured -----------------------------------------------------------------------
def run_method(method: str, fixed: Volume, moving: Volume, affine: np.ndarray, nio: int, refine: int):
    """The deformable step after the pair's (shared) affine; returns the field and its seconds."""
    started = time.time()
    if method == "affine":
        grid = working_grid(fixed, 2.0)
        field = with_affine(grid, np.zeros(grid.array.shape + (3,), np.float32), affine)
    elif method == "sitk-bspline":
        field = bspline(fixed, moving, affine)
    elif method == "sitk-demons":
        field = demons(fixed, moving, affine)
    elif method == "field-optimisation":
        field = optimise_displacement(fixed, moving, affine, InstanceOptimisationConfig(working_spacing_mm=2.5), "cpu")
    else:  # network[+nio][+refine[N]]: N refinement steps instead of --refine
        name, *stages = method.split("+")
        budget = [int(s[6:] or refine) for s in stages if s.startswith("refine")]
        field, _ = register_with_network(fixed, moving, affine, MODELS[name], nio if "nio" in stages else 0, "cpu",
                                         refine_iterations=budget[0] if budget else 0)
    return field, time.time() - started


def evaluate(field: Volume, fixed: Volume, fixed_labels: Volume, moving_labels: Volume, truth: Volume | None) -> dict:
    warped = warp_volume(moving_labels, field, fixed, labels=True)
    agreement = label_agreement(warped, fixed_labels.array, [1, 2], fixed.spacing)
    row = {"dice_gm": agreement["dice"][1], "dice_wm": agreement["dice"][2],
           "dice": float(np.mean(list(agreement["dice"].values()))), "hd95_mm": float(np.mean(list(agreement["hd95_mm"].values()))),
           **field_metrics(jacobian_determinant(field))}
    if truth is not None:
        estimate = displacement_on_grid(field, fixed)
        brain = fixed_labels.array > 0
        row["field_error_mm"] = float(np.linalg.norm(estimate - truth.array, axis=-1)[brain].mean())
        row["initial_error_mm"] = float(np.linalg.norm(truth.array, axis=-1)[brain].mean())
        row["initial_max_mm"] = float(np.linalg.norm(truth.array, axis=-1)[brain].max())
    return row


METHODS = ["affine", "sitk-bspline", "sitk-demons", "field-optimisation", "voxelmorph", "voxelmorph+nio", "voxelmorph+refine", "tm-dca",
           "tm-dca+nio", "tm-dca+refine", "tm-dca+refine90", "tm-dca+nio+refine", "tm-dca-implicit", "tm-dca-implicit+nio", "tm-dca-implicit+refine"]


def print_table(results: dict) -> None:
    groups = {"inter-subject (ITK<->MNI)": lambda k: "->" in k, "known field, MNI copies": lambda k: k.startswith("MNI known"),
              "known field, ITK brain copies": lambda k: k.startswith("ITK known")}
    for title, select in groups.items():
        keys = [k for k in results if select(k)]
        if not keys:
            continue
        print(f"\n**{title}** ({len(keys)} pairs, mean)\n")
        print("| method | Dice GM | Dice WM | Dice mean | HD95 mm | field error mm | % det J <= 0 | SD log J | time s | deformable s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for m in METHODS:
            rows = [results[k][m] for k in keys if m in results[k]]
            if not rows:
                continue
            mean = lambda key: np.mean([r[key] for r in rows]) if all(key in r for r in rows) else float("nan")  # noqa: E731
            print(f"| {m} | {mean('dice_gm'):.3f} | {mean('dice_wm'):.3f} | {mean('dice'):.3f} | {mean('hd95_mm'):.2f} | "
                  f"{mean('field_error_mm'):.2f} | {mean('folding_percent'):.3f} | {mean('sd_log_jacobian'):.3f} | {mean('time_s'):.1f} | "
                  f"{mean('deformable_s'):.1f} |")
        if any("initial_error_mm" in results[k].get("affine", {}) for k in keys):
            print(f"\ninitial mean displacement in the brain: {np.mean([results[k]['affine']['initial_error_mm'] for k in keys]):.2f} mm")


def nio_curve(steps=(0, 20, 40, 80, 160), rates=(1e-4, 1e-3)) -> None:
    """Dice and time of TM-DCA + NIO against the NIO budget and step size, on the inter-subject pairs."""
    saved = HERE / "registration_nio_curve.json"
    curve = json.loads(saved.read_text(encoding="utf-8")) if saved.exists() else {}
    for key, (fixed, fixed_labels, moving, moving_labels, truth) in list(pairs(0, 8.0).items()):
        affine = affine_register(fixed, moving)
        for rate in rates:
            for n in steps:
                name = f"{key} lr={rate:g} steps={n}"
                if name in curve:
                    continue
                started = time.time()
                field, _ = register_with_network(fixed, moving, affine, MODELS["tm-dca"], n, "cpu", nio_learning_rate=rate)
                seconds = time.time() - started
                curve[name] = {**evaluate(field, fixed, fixed_labels, moving_labels, truth), "deformable_s": round(seconds, 2)}
                print(name, round(curve[name]["dice"], 3), curve[name]["deformable_s"], flush=True)
                saved.write_text(json.dumps(curve, indent=1), encoding="utf-8")
    print("\n| pair | lr | NIO steps | Dice mean | % det J <= 0 | deformable s |\n|---|---|---|---|---|---|")
    for name, row in curve.items():
        pair, rate, n = name.rsplit(" ", 2)
        print(f"| {pair} | {rate[3:]} | {n[6:]} | {row['dice']:.3f} | {row['folding_percent']:.3f} | {row['deformable_s']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nio", type=int, default=40)
    parser.add_argument("--refine", type=int, default=70, help="field refinement steps after a network (methods ...+refine)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-mm", type=float, default=8.0)
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--nio-curve", action="store_true", help="TM-DCA + NIO against NIO steps and step size (inter-subject)")
    args = parser.parse_args()
    if args.nio_curve:
        torch.set_num_threads(2)
        nio_curve()
        return
    if args.table:
        print_table(json.loads(RESULTS.read_text(encoding="utf-8")))
        return
    torch.set_num_threads(2)
    results = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    for key, (fixed, fixed_labels, moving, moving_labels, truth) in pairs(args.seeds, args.max_mm).items():
        row = results.setdefault(key, {})
        todo = [m for m in args.methods if m not in row]
        if not todo:
            continue
        started = time.time()
        affine = affine_register(fixed, moving)  # one affine per pair, shared by every method
        affine_s = time.time() - started
        for method in todo:
            field, seconds = run_method(method, fixed, moving, affine, args.nio, args.refine)
            row[method] = {**evaluate(field, fixed, fixed_labels, moving_labels, truth), "time_s": round(affine_s + seconds, 2),
                           "deformable_s": round(seconds, 2)}
            print(key, method, json.dumps({k: round(v, 3) for k, v in row[method].items()}), flush=True)
            RESULTS.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print_table(results)


if __name__ == "__main__":
    main()
