"""`slicerleap demo`: every module's current pipeline, run as a job on bundled real anatomy (MNI152
T1 from the nilearn wheel) in a real MRML scene; writes scene.mrb, PNG previews and report.html."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .data import mni_t1, mni_tissue_labels
from .data.lesion_cases import LESION_VALUE, make_lesion_case
from .data.samples import TISSUE_LABELS
from .demo_report import write_report
from .environment import temporary_environment
from .segmentation.label_specs import LESION_LABEL
from .segmentation.metrics import overlap_metrics
from .transforms import resample_to_reference, resample_to_spacing
from .volume import Volume

TISSUE_MODEL = "brain-tissue-unet@1.0.0"
REPORT_INTRO = ("Data: the MNI ICBM152 2009a T1 template (nilearn wheel), real anatomy. Every step ran as a background job "
                "(<code>python -m slicerleap.worker</code>) fed from and written back to a real MRML scene "
                "(<code>scene.mrb</code>, open it in 3D Slicer). The bundled SKS lesion model segments a held-out case of its "
                "benchmark (synthetic lesions inserted into a randomly warped copy of the template; benchmarks/RESULTS.md has "
                "its Dice over 8 such cases and the U-Net baseline). The bundled tissue model was trained on this same "
                "template, so its Dice here shows the pipeline works, not that the model generalises.")
LESION_DEMO_CASE = 40  # the first held-out case of benchmarks/sks_label_efficiency.py (the bundled SKS model's benchmark)


def _isolated_user_home(folder: Path):
    """Models trained by the demo go to the demo's folder, not the user's catalog."""
    return temporary_environment("SLICERLEAP_HOME", str(folder))


def thick_slices(volume: Volume, factor: int) -> Volume:
    """Simulate a thick-slice acquisition: average `factor` adjacent axial (k) slices (a box slice profile)."""
    k = volume.array.shape[0] // factor * factor
    thick = volume.array[:k].reshape(k // factor, factor, *volume.array.shape[1:]).mean(axis=1)
    m = volume.ijk_to_ras.copy()
    m[:3, 3] = m[:3, 3] + m[:3, 2] * (factor - 1) / 2.0  # slice centre moves half a thick slice
    m[:3, 2] *= factor
    return Volume(thick.astype(np.float32), m, {**volume.metadata, "name": f"{volume.metadata.get('name', 'volume')} {factor}x thick"})


def smooth_random_warp(volume: Volume, max_mm: float, seed: int) -> tuple[Volume, np.ndarray]:
    """The volume resampled through a known smooth random displacement (RAS mm, up to about `max_mm`)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    rng = np.random.default_rng(seed)
    shape = volume.array.shape
    field = np.stack([gaussian_filter(rng.normal(size=shape), 8.0) for _ in range(3)], -1)
    field *= max_mm / (np.abs(field).max() + 1e-8)
    voxel = field @ np.linalg.inv(volume.ijk_to_ras[:3, :3]).T  # RAS mm -> (di, dj, dk)
    kk, jj, ii = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    coords = [kk + voxel[..., 2], jj + voxel[..., 1], ii + voxel[..., 0]]
    warped = map_coordinates(volume.array.astype(np.float32), coords, order=1, mode="constant")
    return volume.with_array(warped.astype(np.float32), name=f"{volume.metadata.get('name')} deformed"), field


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR (dB) with the reference's intensity range as the peak."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(reference, test, data_range=float(reference.max() - reference.min())))


OUTCOME_COLOURS = {1: ("found (true positive)", "#ffd000"), 2: ("missed (false negative)", "#2f7dff"),
                   3: ("false detection (false positive)", "#ff2020")}


def outcome_map(found: np.ndarray, known: np.ndarray) -> np.ndarray:
    """1 = found and known, 2 = known but missed, 3 = found but not known (the colours of OUTCOME_COLOURS)."""
    return np.select([found & known, known & ~found, found & ~known], [1, 2, 3], 0).astype(np.uint8)


def _preview(path: Path, panels: list[tuple[str, np.ndarray, np.ndarray | None]], shared_scale: bool = False,
             colours: dict | None = None) -> Path:
    """One row of panels (title, image, overlay label map or None). shared_scale: every panel on the first one's
    intensity range (before/after comparisons); colours: {overlay value: (legend text, colour)}, else one colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colours = colours or {1: ("label", "#ff8c00")}
    cmap = ListedColormap([colours.get(v, ("", "#ffffff"))[1] for v in range(1, max(colours) + 1)])
    vmin, vmax = (float(panels[0][1].min()), float(panels[0][1].max())) if shared_scale else (None, None)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, image, overlay) in zip(np.atleast_1d(axes), panels):
        ax.imshow(image, cmap="gray", origin="lower", interpolation="nearest", vmin=vmin, vmax=vmax)
        if overlay is not None:
            ax.imshow(np.ma.masked_where(overlay == 0, overlay), cmap=cmap, vmin=0.5, vmax=max(colours) + 0.5, alpha=0.6,
                      origin="lower", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    if any(p[2] is not None for p in panels) and len(colours) > 1:
        fig.legend(handles=[Patch(color=c, label=n) for n, c in colours.values()], loc="lower center", ncol=len(colours), fontsize=8)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _mid_axial(volume: Volume, k: int | None = None) -> np.ndarray:
    return volume.array[volume.array.shape[0] // 2 if k is None else k]


def run_demo(out: Path, quick: bool = False, device: str = "auto") -> dict:
    from .scene import SceneJob, labels_to_segmentation_node, new_scene_context, node_to_volume, save_mrb, volume_to_node

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    previews: list[tuple[Path, str]] = []  # (PNG, caption)
    ctx = new_scene_context(make_current=True)
    t1, reference = mni_t1(), mni_tissue_labels()

    def run(module: str, task: str, inputs: dict, params: dict, model: str | None = None) -> tuple[dict, SceneJob]:
        started = time.time()
        job = SceneJob(ctx, task, inputs, params, model=model, device=device)
        last = [0.0]

        def show(record):  # the job's progress, at most a line every 5 s (iterations come many per second)
            due = time.time() - last[0] >= 5.0
            if record.get("status") or (record.get("message") and (due or record.get("stage") in ("validation", "starting"))):
                last[0] = time.time()
                pct = "" if record.get("progress") is None else f"{100 * record['progress']:3.0f}% "
                print(f"  [{module}] {pct}{record.get('message') or record.get('status')}", flush=True)

        nodes = job.run(on_progress=show)
        rows.append({"module": module, "task": task, "seconds": round(time.time() - started, 1),
                     "metrics": job.result.get("metrics", {}), "device": job.result.get("device"),
                     "model": job.result.get("model", {}).get("id")})
        return nodes, job

    with _isolated_user_home(out / "user-models"):
        # 1a. SKSSegmentation, the module's default model: the bundled SKS lesion model on the first held-out case of
        #     its benchmark (synthetic lesions in a warped MNI T1; never seen in training), scored against the known mask.
        print("SKSSegmentation: lesion segmentation (bundled SKS model)", flush=True)
        case, case_labels = make_lesion_case(LESION_DEMO_CASE)
        lesion_truth = case_labels.array == LESION_VALUE
        case_node = volume_to_node(ctx, case, f"lesion case {LESION_DEMO_CASE}")
        nodes, _ = run("SKSSegmentation", "segment", {"image": case_node}, {})
        lesion = _labels_of(nodes["segmentation"], case_node, {"Lesion": 1}) == 1
        rows[-1]["metrics"]["vs_known_lesions"] = {k: round(v, 3) for k, v in overlap_metrics(lesion, lesion_truth).items()}
        k = int(np.argmax(lesion_truth.sum(axis=(1, 2))))  # the axial slice with the most lesion
        labels_to_segmentation_node(ctx, case_labels.with_array((case_labels.array == LESION_VALUE).astype(np.uint8)),
                                    [{**LESION_LABEL, "value": 1, "color": OUTCOME_COLOURS[2][1]}],  # blue as "missed"
                                    f"lesion case {LESION_DEMO_CASE} known lesions", reference_node=case_node)
        outcome = outcome_map(lesion[k], lesion_truth[k])
        previews.append((_preview(out / "lesions.png", [(f"lesion case {LESION_DEMO_CASE}", _mid_axial(case, k), None),
                                                          ("SKS against the known lesions", _mid_axial(case, k), outcome)],
                                  colours=OUTCOME_COLOURS),
                         f"The bundled SKS model on held-out lesion case {LESION_DEMO_CASE}, the axial slice with the most lesion: "
                         "yellow = lesion found, blue = lesion missed, red = false detection."))

        # 1b. The bundled tissue model on the MNI T1 (the model's own training template).
        print("SKSSegmentation: brain tissue segmentation", flush=True)
        t1_node = volume_to_node(ctx, t1, "MNI152 T1")
        nodes, _ = run("SKSSegmentation", "segment", {"image": t1_node}, {}, model=TISSUE_MODEL)
        labels = _labels_of(nodes["segmentation"], t1_node, {l["name"]: l["value"] for l in TISSUE_LABELS})
        rows[-1]["metrics"]["dice_vs_template_labels"] = {l["name"]: round(overlap_metrics(labels == l["value"], reference.array == l["value"])["dice"], 3) for l in TISSUE_LABELS}
        tissue_colours = {l["value"]: (l["name"], l["color"]) for l in TISSUE_LABELS}
        previews.append((_preview(out / "segmentation.png", [("MNI152 T1", _mid_axial(t1), None),
                                                               ("grey/white matter", _mid_axial(t1), _mid_axial(t1.with_array(labels)))],
                                  colours=tissue_colours),
                         "The bundled tissue U-Net on the MNI152 T1, middle axial slice: grey and white matter in the "
                         "colours of the legend (the same as in the scene)."))

        # 2. SuperResolution: 4 mm axial slices restored to 1 mm by SR4ZCT (job), against cubic B-spline
        #    interpolation computed in process on the same grid.
        print("SuperResolution: 4x thick slices restored to 1 mm (SR4ZCT)", flush=True)
        thick = thick_slices(t1, 4)
        thick_node = volume_to_node(ctx, thick, thick.metadata["name"])
        nodes, _ = run("SuperResolution", "superres", {"image": thick_node},
                       {"method": "sr4zct", "spacing": [1.0, 1.0, 1.0], "iterations": 40 if quick else 300})
        restored = node_to_volume(nodes["volume"])
        truth = resample_to_reference(t1, restored, "linear")
        cubic = resample_to_reference(thick, restored, "bspline", extrapolate=True)
        rows[-1]["metrics"].update({"psnr_sr4zct_db": round(psnr(truth.array, restored.array), 2),
                                    "psnr_cubic_baseline_db": round(psnr(truth.array, cubic.array), 2)})
        mid = restored.array.shape[1] // 2
        previews.append((_preview(out / "superresolution.png", [
            ("original 1 mm", truth.array[:, mid, :], None),
            ("4 mm slices (coronal)", np.repeat(thick.array[:, mid, :], 4, axis=0)[:truth.array.shape[0]], None),
            ("cubic B-spline", cubic.array[:, mid, :], None), ("SR4ZCT", restored.array[:, mid, :], None)], shared_scale=True),
            "Coronal slice: the original 1 mm T1, its 4 mm slices, and both restorations to 1 mm, all on the original's "
            "intensity scale."))

        # 3. RegistrationDL: a known smooth deformation of the (2 mm) T1, recovered by the default a user gets (the
        # bundled TM-DCA network, its field refined on the pair; registration/methods.py).
        print("RegistrationDL: deformable registration", flush=True)
        t1_2mm = resample_to_spacing(t1, [2.0, 2.0, 2.0])
        t1_2mm.metadata["name"] = "MNI152 T1 2mm"
        moving, _ = smooth_random_warp(t1_2mm, 6.0, seed=3)
        fixed_node = volume_to_node(ctx, t1_2mm, "fixed: MNI152 T1 2mm")
        moving_node = volume_to_node(ctx, moving, "moving: MNI152 T1 deformed")
        quick_budget = {"refine_iterations": 10, "affine_iterations": 30} if quick else {}
        nodes, _ = run("RegistrationDL", "register", {"fixed": fixed_node, "moving": moving_node},
                       {"method": "network", **quick_budget})
        warped = node_to_volume(nodes["warped"])
        previews.append((_preview(out / "registration.png", [
            ("fixed", _mid_axial(t1_2mm), None), ("moving", _mid_axial(moving), None), ("moving warped", _mid_axial(warped), None)],
            shared_scale=True), "Middle axial slice of the fixed image, the moving image (a known smooth deformation of "
                                "it) and the moving image warped by the registration, on one intensity scale."))
        previews.append((_preview(out / "registration_difference.png", [
            ("|fixed − moving| before", np.abs(_mid_axial(t1_2mm) - _mid_axial(moving)), None),
            ("|fixed − moving warped| after", np.abs(_mid_axial(t1_2mm) - _mid_axial(warped)), None)], shared_scale=True),
            "Absolute difference to the fixed image before and after registration, on one scale (black = equal)."))

        # 4. FedTools: the local training step a federated site runs, on this site's (scene) data.
        print("FedTools: local site training step", flush=True)
        ref_2mm = resample_to_reference(reference, t1_2mm, "nearest")
        seg_node = labels_to_segmentation_node(ctx, ref_2mm, TISSUE_LABELS, "MNI152 tissue (reference)", reference_node=fixed_node)
        nodes, _ = run("FedTools", "train-segmentation", {"images": [fixed_node], "labels": [(seg_node, fixed_node)]},
                       {"epochs": 1 if quick else 3, "iterations_per_epoch": 3 if quick else 8, "channels": [4, 8, 16, 32],
                        "patch": [48, 48, 48], "labels": TISSUE_LABELS, "model_id": "demo-site-unet@1.0.0",
                        "training_data": "demo: MNI152 T1 at 2 mm with template tissue labels (one site, one case)"})

    scene_path = save_mrb(ctx, out / "scene.mrb")
    report = write_report(out, REPORT_INTRO, rows, previews)
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return {"scene": scene_path, "report": report, "previews": [str(p) for p, _ in previews], "rows": rows}


def _labels_of(segmentation_node, reference_node, values: dict[str, int]) -> np.ndarray:
    from .scene import segmentation_node_to_labels

    return segmentation_node_to_labels(segmentation_node, reference_node, values).array
