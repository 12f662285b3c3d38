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


def require_domain(image: Volume, card: dict, force: bool = False, report=lambda *a, **k: None) -> DomainCheck:
    """`check_domain`, then refuse (unless `force`) or report its warnings. Returns the check for result.json."""
    check = check_domain(image, card)
    if check.outcome == "refused" and not force:
        raise BadInputError(" ".join(check.findings),
                            f"Use a model made for this kind of scan (`slicerleap models list`), prepare the scan as the model "
                            f"expects ({describe_expectation(card)}), or run it anyway with --force (Python: force=True; "
                            f"the panel's 'Run outside the model's domain').")
    for finding in check.findings if check.outcome != "fine" else []:
        report(None, "domain check", ("Forced: " if check.outcome == "refused" else "Warning: ") + finding)
    return check


def wants_brain_extraction(image: Volume, card: dict) -> bool:
    """True for an MR head that still has its skull (more tissue than a brain) given to a model trained on
    skull-stripped brains: the brain can be extracted first (registration.brain_extraction)."""
    domain = card.get("domain") or {}
    if not domain.get("skull_stripped"):
        return False
    seen = describe_scan(image)
    return seen["modality"] == "MR" and seen["foreground_ml"] > domain.get("foreground_ml", (0, float("inf")))[1]


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
    (`label_regions_max`: twice what the model finds on held-out cases like its training data), or largely outside it. `labels` (k, j, i) on the image's grid; `tissue`: scanned_tissue(image), when the domain check
    already found it. Empty when nothing looks wrong."""
    tissue = ndimage.binary_dilation(scanned_tissue(image) if tissue is None else tissue, iterations=2)
    findings = []
    for label in card.get("labels", []):
        mask = labels == label["value"]
        n = int(mask.sum())
        if n == 0:
            continue
        share_of_tissue = float((mask & tissue).sum()) / max(int(tissue.sum()), 1)
        outside = 1.0 - float((mask & tissue).sum()) / n
        domain = card.get("domain", {})
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
        if outside > 0.1:
            findings.append(f"{100 * outside:.0f} % of '{label['name']}' lies outside the scanned tissue.")
    return findings
