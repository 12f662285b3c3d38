"""The demo's report.html: per step a table of its metrics with units and a one-line meaning, and each picture with a
caption that says what its colours are. Plain HTML, readable at 1280 px (checked in headless Chromium by
Testing/test_demo.py)."""
from __future__ import annotations

import html
from pathlib import Path

# metric key (dotted path, last part, or first part) -> (name, unit, what it means)
METRICS = {
    "volume_ml": ("volume", "mL", "volume of each label in the output"),
    "dice": ("Dice", "0–1", "overlap with the reference, 2|A∩B| / (|A| + |B|); 1 = identical"),
    "jaccard": ("Jaccard", "0–1", "overlap with the reference, |A∩B| / |A∪B|"),
    "precision": ("precision", "0–1", "share of the labelled voxels that are in the reference"),
    "recall": ("recall", "0–1", "share of the reference's voxels that were labelled"),
    "hd95_mm": ("HD95", "mm", "95th percentile of the distance between the two outlines"),
    "vs_known_lesions": ("against the known lesions", "", "the case's synthetic lesions are known exactly"),
    "dice_vs_template_labels": ("Dice vs the template's labels", "0–1",
                                "overlap with the MNI template's grey/white matter (the model was trained on them)"),
    "ncc_before": ("NCC before", "−1–1", "normalised cross-correlation of fixed and moving image in the fixed image's foreground"),
    "ncc_after": ("NCC after", "−1–1", "the same after registration; 1 = identical intensities"),
    "folding_percent": ("folding", "% of voxels", "where the transform folds space (Jacobian determinant ≤ 0); 0 = plausible"),
    "sd_log_jacobian": ("SD of log Jacobian", "—", "spread of local volume changes; smaller = smoother deformation"),
    "jacobian_min": ("smallest Jacobian", "ratio", "strongest local shrinking (1 = none)"),
    "jacobian_max": ("largest Jacobian", "ratio", "strongest local growth (1 = none)"),
    "registration_s": ("registration time", "s", "affine and deformable steps, without reading and writing"),
    "psnr_sr4zct_db": ("PSNR, SR4ZCT", "dB", "against the original 1 mm T1; higher is closer"),
    "psnr_cubic_baseline_db": ("PSNR, cubic B-spline", "dB", "the same for plain interpolation of the thick slices"),
    "method": ("method", "", "what ran (the defaults a user gets unless the step says otherwise)"),
    "input_spacing_mm": ("input voxel size", "mm", "i, j, k"),
    "output_spacing_mm": ("output voxel size", "mm", "i, j, k"),
    "output_shape_ijk": ("output size", "voxels", "i, j, k"),
    "final_val_dice": ("validation Dice", "0–1", "the trained model on the site's validation data after the last epoch"),
    "epochs": ("epochs", "", "passes of local training"),
    "domain": ("domain check", "", "whether the scan is what the model was made for (fine / warning / refused)"),
    "result_check": ("result check", "", "what looks wrong in the result (empty: nothing found)"),
    "notes": ("notes", "", "what the method says about this input"),
}


def describe(key: str) -> tuple[str, str, str]:
    """(name, unit, meaning) of a flattened metric key, e.g. "vs_known_lesions.dice" or "volume_ml.Lesion"."""
    first, *_, last = key.split(".") if "." in key else (key, key)
    if first == last:
        return METRICS.get(key, (key, "", ""))
    group = METRICS.get(first, (first, "", ""))
    if last in METRICS:  # a known measure of a group: the measure's unit and meaning
        return f"{group[0]}: {METRICS[last][0]}", METRICS[last][1], METRICS[last][2]
    return f"{group[0]}: {last}", group[1], group[2]  # e.g. a label name: the group's unit and meaning


def flatten(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if key == "domain" and isinstance(value, dict):  # its outcome and findings, not every measurement
            rows.append((path, "; ".join([value.get("outcome", "")] + list(value.get("findings", [])))))
        elif isinstance(value, dict):
            rows.extend(flatten(value, path + "."))
        elif isinstance(value, (list, tuple)):
            rows.append((path, "; ".join(map(str, value)) if value else "—"))
        else:
            rows.append((path, value))
    return rows


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def write_report(out: Path, intro: str, steps: list[dict], figures: list[tuple[Path, str]]) -> Path:
    """steps: {module, task, seconds, device, model, metrics}; figures: (PNG next to the report, caption)."""
    lines = ["<!doctype html><html lang='en'><meta charset='utf-8'><meta name='viewport' content='width=device-width'>",
             "<title>SlicerLeap demo</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;line-height:1.4}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;"
             "vertical-align:top}th{background:#f3f3f3}td.v{font-variant-numeric:tabular-nums;white-space:nowrap}"
             "figure{margin:1em 0 2em}img{max-width:100%;height:auto}figcaption{color:#333;font-size:.95em}</style>",
             "<h1>SlicerLeap demo</h1>", f"<p>{intro}</p>"]
    for step in steps:
        lines.append(f"<h2>{html.escape(step['module'])}: {html.escape(step['task'])}</h2>")
        lines.append(f"<p>{step['seconds']} s on {html.escape(str(step['device']))}"
                     + (f", model <code>{html.escape(str(step['model']))}</code>" if step.get("model") else "") + "</p>")
        lines.append("<table><tr><th>metric</th><th>value</th><th>unit</th><th>what it means</th></tr>")
        for key, value in flatten(step.get("metrics", {})):
            name, unit, meaning = describe(key)
            lines.append(f"<tr><td>{html.escape(name)}</td><td class='v'>{_value(value)}</td><td>{html.escape(unit)}</td>"
                         f"<td>{html.escape(meaning)}</td></tr>")
        lines.append("</table>")
    for path, caption in figures:
        lines.append(f"<figure><img src='{html.escape(Path(path).name)}' alt='{html.escape(caption)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    path = Path(out) / "report.html"
    path.write_text("\n".join(lines) + "\n</html>\n", encoding="utf-8")
    return path
