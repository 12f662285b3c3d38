"""Brain extraction before brain models (issue 33): what it does to the default `segment` on a real T1 that still has
its skull, against running the models on the whole head (--force) and on the brain as ITK's own mask cuts it.

Scans: ITK's example head (Debian insighttoolkit5-examples; 2x2x3 mm, a subject and scanner the models never saw,
lesion-free) at its own voxels and resampled to 1 mm. Its k-means classes give the reference brain (classes 4-6:
CSF, grey and white matter inside ITK's skull mask) and grey/white matter labels (k-means, not an expert's).
In-domain reference: the bundled lesion model on held-out synthetic lesion cases (MNI anatomy, seeds 40-47,
after the 40 training cases), for the number of separate lesions it finds where its training data came from.

    python benchmarks/brain_extraction.py --out benchmarks/brain_extraction.json
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy import ndimage

from slicerleap.data.itk_examples import _folder
from slicerleap.data.lesion_cases import make_lesion_case
from slicerleap.data.samples import mni_brain_template
from slicerleap.io import read_volume
from slicerleap.json_files import write_json_atomically
from slicerleap.models import get_catalog
from slicerleap.models.networks import load_model
from slicerleap.registration.brain_extraction import extract_brain
from slicerleap.segmentation.inference import segment_volume
from slicerleap.segmentation.metrics import overlap_metrics
from slicerleap.transforms import resample_to_reference, resample_to_spacing

LESION_MODEL, TISSUE_MODEL = "brain-lesion-sks@1.0.0", "brain-tissue-unet@1.0.0"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(overlap_metrics(a, b)["dice"]), 3)


def itk_head(spacing_mm: float | None):
    """(head with skull, reference brain mask, reference tissue labels 1 = GM, 2 = WM) at its own voxels or resampled."""
    head = read_volume(_folder() / "KmeansTest_T1UCharRaw.nii.gz")
    head = head.with_array(head.array.astype(np.float32), name="ITK example head", modality="MR")
    classes = read_volume(_folder() / "KmeansTest_T1KmeansPrelimSegmentation.nii.gz")
    if spacing_mm:
        head = resample_to_spacing(head, [spacing_mm] * 3, "linear")
        classes = resample_to_reference(classes, head, "nearest")
    c = classes.array
    return head, c >= 4, np.where(c == 5, 1, np.where(c == 6, 2, 0))


def run_model(card, net, image, mask=None) -> tuple[np.ndarray, float]:
    masked = image if mask is None else image.with_array(image.array * mask)
    started = time.time()
    labels, _ = segment_volume(masked, card, net, "cpu", lambda *a, **k: None)
    out = labels.array if mask is None else np.where(mask, labels.array, 0)
    return out, round(time.time() - started, 1)


def lesion_stats(labels: np.ndarray, spacing) -> dict:
    return {"lesion_ml": round(float((labels > 0).sum() * np.prod(spacing)) / 1000, 2),
            "lesion_regions": int(ndimage.label(labels > 0)[1])}


def segment_task_seconds(head) -> dict:
    """Wall time of the default `segment` job (worker process, default model) with the brain extracted first and,
    for comparison, run on the whole head (brain_mask off, forced)."""
    import tempfile
    from pathlib import Path

    from slicerleap.io import write_volume
    from slicerleap.jobs.files import run_task_on_files

    seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        scan = write_volume(head, Path(folder) / "head.nii.gz")
        for name, params in (("brain extracted first (default)", {}), ("whole head (--brain-mask off --force)",
                                                                       {"brain_mask": "off", "force": True})):
            started = time.time()
            result, job = run_task_on_files("segment", {"image": scan}, params, device="cpu")
            job.cleanup()
            seconds[name] = round(time.time() - started, 1)
            if "brain_mask" in result["metrics"]:
                seconds["of which brain extraction"] = result["metrics"]["brain_mask"]["seconds"]
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    catalog = get_catalog()
    lesion_card, tissue_card = catalog.resolve(LESION_MODEL, "segmentation"), catalog.resolve(TISSUE_MODEL, "segmentation")
    lesion_net, tissue_net = load_model(lesion_card, "cpu"), load_model(tissue_card, "cpu")
    results = {"threads": args.threads, "scans": {}, "in_domain": []}
    for spacing in (None, 1.0):
        head, brain_ref, tissue_ref = itk_head(spacing)
        name = "ITK head, own 2x2x3 mm voxels" if spacing is None else "ITK head resampled to 1 mm"
        mask_volume, info = extract_brain(head, mni_brain_template())
        ours = mask_volume.array > 0
        row = {"extraction": {**info, "dice_vs_itk_mask": dice(ours, brain_ref),
                              "itk_mask_ml": round(float(brain_ref.sum() * np.prod(head.spacing)) / 1000, 1)}}
        for variant, mask in (("whole head (--force)", None), ("our brain mask", ours), ("ITK's brain mask", brain_ref)):
            lesions, seconds = run_model(lesion_card, lesion_net, head, mask)
            tissue, _ = run_model(tissue_card, tissue_net, head, mask)
            row[variant] = {**lesion_stats(lesions, head.spacing), "lesion_model_s": seconds,
                            "lesion_outside_itk_brain_ml": round(float(((lesions > 0) & ~brain_ref).sum() * np.prod(head.spacing)) / 1000, 2),
                            "dice_gm": dice(tissue == 1, tissue_ref == 1), "dice_wm": dice(tissue == 2, tissue_ref == 2),
                            "tissue_outside_itk_brain_ml": round(float(((tissue > 0) & ~brain_ref).sum() * np.prod(head.spacing)) / 1000, 1)}
            print(name, variant, row[variant], flush=True)
        print(name, "extraction", row["extraction"], flush=True)
        results["scans"][name] = row
    results["segment_task_s"] = segment_task_seconds(itk_head(1.0)[0])
    print("default segment task, seconds:", results["segment_task_s"], flush=True)
    for seed in range(40, 48):  # held out: the lesion model was trained on seeds 0-39
        image, truth = make_lesion_case(seed)
        lesions, _ = run_model(lesion_card, lesion_net, image)
        results["in_domain"].append({"seed": seed, "true_regions": int(ndimage.label(truth.array > 0)[1]),
                                     **lesion_stats(lesions, image.spacing)})
        print("in-domain", results["in_domain"][-1], flush=True)
    if args.out:
        write_json_atomically(args.out, results)
    print(markdown_table(results))


def markdown_table(results: dict) -> str:
    lines = ["| scan | brain | lesion mL (lesion-free scan) | separate lesions | lesion mL outside ITK's brain | tissue Dice GM / WM | tissue mL outside ITK's brain |",
             "|---|---|---|---|---|---|---|"]
    for name, row in results["scans"].items():
        for variant in ("whole head (--force)", "our brain mask", "ITK's brain mask"):
            r = row[variant]
            lines.append(f"| {name} | {variant} | {r['lesion_ml']} | {r['lesion_regions']} | {r['lesion_outside_itk_brain_ml']} | "
                         f"{r['dice_gm']} / {r['dice_wm']} | {r['tissue_outside_itk_brain_ml']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
