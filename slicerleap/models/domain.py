"""Where a model applies, and whether a scan is inside it. A card's "domain" declares the modality, region,
preprocessing (skull-stripped or not), voxel sizes and an intensity signature of its training data; before a model
runs, `check_domain` compares the scan against it: fine, a warning (in the CLI output, result.json and the panel's
status) or refused (a `BadInputError` naming the problem and the fix, overridable with force=True / --force).
A model run outside its domain gives confident, clinical-looking and wrong numbers: on a real head CT the MR lesion
model reported 1.2 L of "lesion", on a T1 with skull 85 mL in scalp and neck (issue 33).

The measures are deliberately simple and say what they saw:
- modality: the scan's own metadata when it says CT or MR; else Hounsfield-like values (air near −1000, bone above
  +300) mean CT;
- skull stripping: the volume of the largest bright connected region (> 15 % of the 0.5–99.5 percentile range,
  holes filled): a skull-stripped brain is 1.0–2.2 L (MNI template 1.9 L, ITK's example brain 1.5 L), a head with
  scalp 2.6 L and more (ITK's example head before masking: 2.6 L; a head CT: 3.5 L);
- intensity signature: quantiles (10/25/50/75/90 %) of that region's intensities after the 0.5–99.5 percentile
  normalisation, the largest difference to the training data's (training cases themselves: up to 0.065)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import BadInputError
from ..volume import Volume

QUANTILES = (10, 25, 50, 75, 90)
OUTSIDE_MAX = 0.1  # the share of a label outside the scanned tissue that the result check reports, unless the card says


@dataclass
class DomainCheck:
    outcome: str  # "fine", "warning", "refused" or "unknown" (the card declares no domain)
    findings: list[str] = field(default_factory=list)
    measured: dict = field(default_factory=dict)
    tissue: np.ndarray | None = field(default=None, repr=False)  # the scanned tissue (k, j, i), for check_result

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, "findings": self.findings, "measured": self.measured}


def _intensity_range(array: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(array, [0.5, 99.5])
    return float(low), float(high)


def scanned_tissue(image: Volume) -> np.ndarray:
    """The largest bright connected region, holes filled: what the scan shows (brain, head or body)."""
    array = image.array.astype(np.float32)
    return _foreground(array, *_intensity_range(array))


def _foreground(array: np.ndarray, low: float, high: float) -> np.ndarray:
    mask = ndimage.binary_opening(array > low + 0.15 * (high - low), iterations=1)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    largest = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return ndimage.binary_fill_holes(largest)


def describe_scan(image: Volume, foreground: np.ndarray | None = None) -> dict:
    """What the check measures: modality, its evidence, foreground volume (mL) and the intensity signature.
    `foreground`: the scan's tissue when already known (scanned_tissue)."""
    array = image.array.astype(np.float32)
    low, high = _intensity_range(array)
    foreground = _foreground(array, low, high) if foreground is None else foreground
    normalised = np.clip((array[foreground] - low) / max(high - low, 1e-6), 0, 1)
    stated = str(image.metadata.get("modality", "")).upper()
    hounsfield = low <= -500 and high >= 300
    modality = stated if stated in ("CT", "MR") else ("CT" if hounsfield else "MR")
    return {"modality": modality, "modality_from": "metadata" if stated in ("CT", "MR") else "intensities",
            "intensity_range": [round(low, 1), round(high, 1)],
            "foreground_ml": round(float(foreground.sum() * np.prod(image.spacing)) / 1000.0, 1),
            "spacing_mm": [round(float(s), 3) for s in image.spacing],
            "intensity_quantiles": [round(float(q), 3) for q in np.percentile(normalised, QUANTILES)] if normalised.size else None}


def check_domain(image: Volume, card: dict) -> DomainCheck:
    domain = card.get("domain")
    if not domain:
        return DomainCheck("unknown", [f"Model '{card['id']}' declares no domain: the scan was not checked against it."])
    tissue = scanned_tissue(image)
    seen = describe_scan(image, tissue)
    refused, warnings = [], []
    wanted = domain.get("modality", card.get("modality", "any"))
    if wanted not in ("any", None) and seen["modality"] != wanted:
        low, high = seen["intensity_range"]
        evidence = "its metadata says so" if seen["modality_from"] == "metadata" else f"intensities from {low:g} to {high:g}"
        refused.append(f"The scan looks like {seen['modality']} ({evidence}), but model '{card['id']}' was trained on {wanted}.")
    else:
        ml_low, ml_high = domain.get("foreground_ml", (0, float("inf")))
        region = domain.get("region", "the region it was trained on")
        if seen["foreground_ml"] > ml_high and domain.get("skull_stripped"):
            refused.append(f"The scan shows {seen['foreground_ml']:.0f} mL of tissue, more than a skull-stripped {region} "
                           f"(at most {ml_high:g} mL): model '{card['id']}' was trained on skull-stripped scans and labels "
                           f"scalp, skull and neck otherwise.")
        elif seen["foreground_ml"] > ml_high or seen["foreground_ml"] < ml_low:
            warnings.append(f"The scan shows {seen['foreground_ml']:.0f} mL of tissue; model '{card['id']}' was trained on "
                            f"{region} scans of {ml_low:g}-{ml_high:g} mL (a different field of view or body part?).")
        spacing_low, spacing_high = domain.get("spacing_mm", (0, float("inf")))
        if max(seen["spacing_mm"]) > spacing_high or min(seen["spacing_mm"]) < spacing_low:
            warnings.append(f"Voxels of {' x '.join(f'{s:g}' for s in seen['spacing_mm'])} mm; model '{card['id']}' was "
                            f"trained on voxels of {spacing_low:g}-{spacing_high:g} mm.")
        reference, limit = domain.get("intensity_quantiles"), domain.get("intensity_distance_max")
        if reference and limit and seen["intensity_quantiles"]:
            distance = float(np.max(np.abs(np.subtract(seen["intensity_quantiles"], reference))))
            seen["intensity_distance"] = round(distance, 3)
            if distance > limit:
                warnings.append(f"The scan's intensities differ from the training data's (signature distance {distance:.2f}, "
                                f"training cases up to {limit:g}): another contrast or preprocessing?")
    return DomainCheck("refused" if refused else "warning" if warnings else "fine", refused + warnings, seen, tissue)


def require_domain(image: Volume, card: dict, force: bool = False, report=lambda *a, **k: None,
                   alternative: str = "Use a model made for this kind of scan (`slicerleap models list`)",
                   check: DomainCheck | None = None) -> DomainCheck:
    """`check_domain`, then refuse (unless `force`) or report its warnings. Returns the check for result.json.
    `alternative`: the first fix the refusal offers; `check`: check_domain(image, card) when already made."""
    check = check_domain(image, card) if check is None else check
    if check.outcome == "refused" and not force:
        raise BadInputError(" ".join(check.findings),
                            f"{alternative}, prepare the scan as the model expects ({describe_expectation(card)}), or run it "
                            f"anyway with --force (Python: force=True; SKSSegmentation's panel: 'Run outside the model's domain').")
    for finding in check.findings if check.outcome != "fine" else []:
        report(None, "domain check", ("Forced: " if check.outcome == "refused" else "Warning: ") + finding)
    return check


def measure_training_case(image: Volume, label_array: np.ndarray | None, labels: list[dict]) -> dict:
    """What training_domain needs from one training case (measured as the case is read, so no image is kept):
    describe_scan's measures and, when it has pixel labels, the share of the tissue each label covers."""
    tissue = scanned_tissue(image)
    around = _label_region(tissue)
    shares, outside = {}, {}
    for label in labels if label_array is not None else []:
        mask = label_array == label["value"]
        shares[label["name"]], outside[label["name"]] = label_coverage(mask, around)
    return {"scan": describe_scan(image, tissue), "label_shares": shares,
            "label_outside": {name: share for name, share in outside.items() if share is not None}}


def _label_region(tissue: np.ndarray) -> np.ndarray:
    """Where a label counts as on the scanned tissue: the tissue grown by 2 voxels (a label's rim may lie beyond it)."""
    return ndimage.binary_dilation(tissue, iterations=2)


def label_coverage(mask: np.ndarray, region: np.ndarray) -> tuple[float, float | None]:
    """(share of `region` the label covers, share of the label outside it; None for an empty label). `region`:
    _label_region of the scanned tissue — the same measure in training (training_domain) and in check_result."""
    n, inside = int(mask.sum()), int((mask & region).sum())
    return inside / max(int(region.sum()), 1), (1.0 - inside / n) if n else None


def training_domain(measured: list[dict], modality: str | None = None) -> dict:
    """The domain a model trained in SlicerLeap declares, from its training cases (measure_training_case): the
    modality they show (or the one the user named), their tissue volume, voxel sizes and intensity signature, and how
    much of the tissue each label covered. Limits are generous — a scan outside them gets a warning, never a refusal
    (only another modality refuses): a training set says little about what else the model can handle."""
    seen = [m["scan"] for m in measured]
    signatures = [s["intensity_quantiles"] for s in seen if s["intensity_quantiles"]]
    signature = np.mean(signatures, axis=0)
    spread = max(float(np.max(np.abs(np.subtract(s, signature)))) for s in signatures)
    stated = (modality or "").upper()
    measured_modality = max(("CT", "MR"), key=lambda m: sum(s["modality"] == m for s in seen))
    foreground, spacing = [s["foreground_ml"] for s in seen], [x for s in seen for x in s["spacing_mm"]]
    domain = {"modality": stated if stated in ("CT", "MR", "PET", "US") else measured_modality,
              "foreground_ml": [round(0.5 * min(foreground), 1), round(1.5 * max(foreground), 1)],
              "spacing_mm": [round(0.5 * min(spacing), 3), round(2.0 * max(spacing), 3)],
              "intensity_quantiles": [round(float(q), 3) for q in signature],
              "intensity_distance_max": round(max(2.0 * spread, 0.1), 3),
              "source": f"measured on the {len(seen)} training image(s) when the model was trained: tissue volume 0.5-1.5x "
                        "and voxel sizes 0.5-2x theirs, signature distance limit twice their spread (at least 0.1), label "
                        "share limits 5x the largest among them"}
    shares: dict[str, list[float]] = {}
    outside: dict[str, list[float]] = {}
    for m in measured:
        for name, share in m["label_shares"].items():
            shares.setdefault(name, []).append(share)
        for name, share in m.get("label_outside", {}).items():
            outside.setdefault(name, []).append(share)
    covered = {name: min(1.0, round(5.0 * max(values), 4)) for name, values in shares.items() if max(values) > 0}
    if covered:
        domain["label_share_max"] = covered
    # labels that lay outside the bright tissue in training (a dim structure, air, ...) are not flagged for it later
    beyond = {name: min(1.0, round(max(OUTSIDE_MAX, 2.0 * max(values)), 3)) for name, values in outside.items()
              if 2.0 * max(values) > OUTSIDE_MAX}
    if beyond:
        domain["label_outside_max"] = beyond
    return domain


def wants_brain_extraction(check: DomainCheck, card: dict) -> bool:
    """True when `check` (check_domain of the scan) saw an MR head that still has its skull (more tissue than a brain)
    for a model trained on skull-stripped brains: the brain can be extracted first (registration.brain_extraction)."""
    domain = card.get("domain") or {}
    seen = check.measured
    return bool(domain.get("skull_stripped")) and seen.get("modality") == "MR" and \
        seen.get("foreground_ml", 0) > domain.get("foreground_ml", (0, float("inf")))[1]


def describe_expectation(card: dict) -> str:
    domain = card.get("domain", {})
    parts = [domain.get("modality", card.get("modality", "any")), domain.get("region", "")]
    if domain.get("skull_stripped"):
        parts.append("skull-stripped")
    if "spacing_mm" in domain:
        parts.append(f"voxels {domain['spacing_mm'][0]:g}-{domain['spacing_mm'][1]:g} mm")
    return ", ".join(p for p in parts if p)


def check_result(image: Volume, labels: np.ndarray, card: dict, tissue: np.ndarray | None = None) -> list[str]:
    """After inference: what looks wrong in a labelmap, said rather than hidden — a label over more of the scanned
    tissue than the card's domain allows (`label_share_max`, e.g. a lesion), in more separate regions than it allows
    (`label_regions_max`: twice what the model finds on held-out cases like its training data), or largely outside it
    (more than `label_outside_max`, default OUTSIDE_MAX). `labels` (k, j, i) on the image's grid; `tissue`:
    scanned_tissue(image), when the domain check already found it. Empty when nothing looks wrong."""
    region = _label_region(scanned_tissue(image) if tissue is None else tissue)
    findings, domain = [], card.get("domain", {})
    for label in card.get("labels", []):
        mask = labels == label["value"]
        share_of_tissue, outside = label_coverage(mask, region)
        if outside is None:  # not in the result
            continue
        limit = domain.get("label_share_max", {}).get(label["name"])  # e.g. a lesion: a small part
        if limit is not None and share_of_tissue > limit:
            findings.append(f"'{label['name']}' covers {100 * share_of_tissue:.0f} % of the scanned tissue (the model's "
                            f"training cases: at most {100 * limit:.0f} %): check the result before trusting its volume.")
        most_regions = domain.get("label_regions_max", {}).get(label["name"])  # scattered specks: the model is guessing
        regions = int(ndimage.label(mask)[1]) if most_regions is not None else 0
        if most_regions is not None and regions > most_regions:
            findings.append(f"'{label['name']}' is {regions} separate regions (on scans like its training data the model "
                            f"finds at most about {most_regions // 2}): scattered false detections are likely; check the "
                            f"result before trusting its volume.")
        if outside > domain.get("label_outside_max", {}).get(label["name"], OUTSIDE_MAX):
            findings.append(f"{100 * outside:.0f} % of '{label['name']}' lies outside the scanned tissue.")
    return findings
