"""Registration at the scans' own resolution, against the tools users would pick instead (issue 32).

Pairs (real anatomy, nothing downloaded):
- known fields: the MNI template at 1 mm and ITK's example head at its own 2x2x3 mm, each against a copy of
  itself warped by a smooth random diffeomorphism with a mean displacement in the brain of 2, 5 or 8 mm (max
  about 2.7x the mean), with intensity changes (gamma, noise). Field seeds 10.. tune, seeds 0-2 report;
- inter-subject: ITK head -> MNI (1 mm) and back.
Methods, each from the same affine-free start (each does its own pre-alignment, timed with it):
- `slicerleap`: the `register` task's default (SimpleITK affine, TM-DCA, refinement; registration/methods.py);
- `demons`: SimpleITK diffeomorphic demons after our affine, histogram-matched, 3 levels x 100 iterations at the
  fixed image's resolution;
- `ants-syn`: ANTs SyN with its defaults (antspyx, `pip install .[benchmarks]`; its own affine).
Baselines are cached in the results file: a rerun of one method redoes only it.
Metrics on the fixed image's grid, from the field each method writes: Dice of GM/WM propagated from the moving
image, HD95 (mm), mean field error in the fixed brain (known fields), % voxels with det J <= 0 over the whole
fixed grid, SD log det J, seconds (threads: --threads, the same for every method).

    python benchmarks/registration_native.py --methods slicerleap demons ants-syn --seeds 0 1 2 --means 2 5 8
    python benchmarks/registration_native.py --table
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from slicerleap.data import mni_t1, mni_tissue_labels
from slicerleap.data.itk_examples import itk_example_brain
from slicerleap.io.image_io import lps_vectors_to_ras, volume_to_sitk
from slicerleap.json_files import write_json_atomically
from slicerleap.registration.affine import affine_register
from slicerleap.registration.methods import REGISTRATION
from slicerleap.registration.network_registration import register_with_network
from slicerleap.registration.random_deformation import random_displacement
from slicerleap.registration.working_grid import displacement_on_grid, on_fixed_grid, working_grid
from slicerleap.volume import Volume

import registration_brains  # noqa: E402  (this folder: the 2 mm benchmark's demons)

RESULTS = Path(__file__).with_name("registration_native.json")


# -- pairs ------------------------------------------------------------------------------------------------
def known_field(image: Volume, labels: Volume, mean_mm: float, seed: int):
    """fixed = image warped by a random diffeomorphism d with mean |d| = mean_mm in the brain; moving = image.
    Returns fixed, fixed labels, moving, moving labels, d (RAS mm, on the fixed grid)."""
    coarse = working_grid(image, 4.0)
    brain = labels.array > 0
    scale = mean_mm / 4.0
    for _ in range(3):  # scaling and squaring is not linear in the velocity: rescale until the mean fits
        ddf = random_displacement(coarse.array.shape, scale, control_points=4, generator=torch.Generator().manual_seed(seed))
        voxel = ddf[0].numpy().transpose(1, 2, 3, 0)[..., ::-1]
        truth = displacement_on_grid(coarse.with_array((voxel @ coarse.ijk_to_ras[:3, :3].T).astype(np.float32)), image)
        mean = float(np.linalg.norm(truth, axis=-1)[brain].mean())
        scale *= mean_mm / mean
    truth_volume = image.with_array(truth.astype(np.float32))
    return (*registration_brains.warped_copy(image, labels, truth_volume, seed), image, labels, truth_volume)


def brains():
    mni, mni_labels = mni_t1(), mni_tissue_labels()
    itk, itk_labels = itk_example_brain()
    return {"MNI": (mni, mni_labels), "ITK": (itk, itk_labels)}


def pair_names(seeds, means, inter_subject: bool) -> list[str]:
    names = [f"{b} known field {m:g} mm seed {s}" for b in ("MNI", "ITK") for m in means for s in seeds]
    return names + (["ITK->MNI", "MNI->ITK"] if inter_subject else [])


def make_pair(name: str, data):
    if "->" in name:
        moving, fixed = name.split("->")
        return (*data[fixed], *data[moving], None)
    brain, _, _, mean, _, _, seed = name.split()
    return known_field(*data[brain], float(mean), 1000 + int(seed))


# -- methods: each returns the resampling field on the fixed grid (RAS mm) --------------------------------
def slicerleap_default(fixed: Volume, moving: Volume) -> Volume:
    p = REGISTRATION.resolve("network", {})
    affine = affine_register(fixed, moving)
    field, _ = register_with_network(fixed, moving, affine, None, p["nio_iterations"], "cpu",
                                     refine_iterations=p["refine_iterations"])
    return on_fixed_grid(field, fixed)


def demons(fixed: Volume, moving: Volume) -> Volume:
    affine = affine_register(fixed, moving)
    return on_fixed_grid(registration_brains.demons(fixed, moving, affine, float(min(fixed.spacing))), fixed)


def ants_syn(fixed: Volume, moving: Volume) -> Volume:
    import tempfile

    import ants

    folder = Path(tempfile.mkdtemp(prefix="ants_"))
    paths = []
    for name, volume in (("fixed", fixed), ("moving", moving)):
        paths.append(str(folder / f"{name}.nii.gz"))
        sitk.WriteImage(sitk.Cast(volume_to_sitk(volume), sitk.sitkFloat32), paths[-1])
    f, m = ants.image_read(paths[0]), ants.image_read(paths[1])
    result = ants.registration(f, m, type_of_transform="SyN", outprefix=str(folder / "syn_"))
    composed = ants.apply_transforms(f, m, result["fwdtransforms"], compose=str(folder / "composed_"))
    field = sitk.ReadImage(composed)  # fixed point -> moving point, LPS mm, on the fixed grid
    reference = volume_to_sitk(fixed)
    field = sitk.Resample(field, reference, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
    return fixed.with_array(lps_vectors_to_ras(sitk.GetArrayFromImage(field)).astype(np.float32), name="displacement")


METHODS = {"slicerleap": slicerleap_default, "demons": demons, "ants-syn": ants_syn}


def table(results: dict) -> str:
    """Per pair group and method: mean ± sample SD (ddof 1) over the report seeds (0-2) and pairs."""
    def group(name):
        if "->" in name:
            return "inter-subject (ITK head <-> MNI, 2 pairs)"
        brain, _, _, mean, *_ = name.split()
        return f"{brain} known field, mean {mean} mm"
    lines = ["| pairs | method | Dice GM/WM mean | HD95 mm | field error mm | % det J <= 0 (fixed grid) | SD log J | seconds | n |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for name, row in results["pairs"].items():
        if " seed " in name and int(name.split()[-1]) >= 10:
            continue  # tuning seeds
        groups.setdefault(group(name), []).append(row)
    for title, rows in groups.items():
        for method in METHODS:
            runs = [r[method] for r in rows if method in r]
            if not runs:
                continue
            def cell(key, digits=3):
                values = [r[key] for r in runs if key in r]
                if not values:
                    return "—"
                return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else f"{values[0]:.{digits}f}"
            lines.append(f"| {title} | {method} | {cell('dice')} | {cell('hd95_mm', 2)} | {cell('field_error_mm', 2)} | "
                         f"{cell('folding_percent')} | {cell('sd_log_jacobian')} | {cell('seconds', 1)} | {len(runs)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--means", type=float, nargs="+", default=[2.0, 5.0, 8.0])
    ap.add_argument("--brains", nargs="+", default=["MNI", "ITK"])
    ap.add_argument("--no-inter-subject", action="store_true")
    ap.add_argument("--redo", nargs="*", default=[], help="methods to run again where already recorded (e.g. slicerleap)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    path = Path(args.results)
    results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"pairs": {}}
    if args.table:
        return print(table(results))
    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    data = brains()
    for name in pair_names(args.seeds, args.means, not args.no_inter_subject):
        if name.split()[0] not in args.brains and "->" not in name:
            continue
        row = results["pairs"].setdefault(name, {})
        todo = [m for m in args.methods if m not in row or m in args.redo]
        if not todo:
            continue
        fixed, fixed_labels, moving, moving_labels, truth = make_pair(name, data)
        for method in todo:
            started = time.time()
            field = METHODS[method](fixed, moving)
            seconds = time.time() - started
            row[method] = {**registration_brains.evaluate(field, fixed, fixed_labels, moving_labels, truth), "seconds": round(seconds, 2),
                           "threads": args.threads}
            print(name, method, json.dumps({k: round(v, 3) for k, v in row[method].items()}), flush=True)
            write_json_atomically(path, results)
    print(table(results))


if __name__ == "__main__":
    main()
