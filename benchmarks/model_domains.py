"""Each segmentation model's domain check on the real scans at hand (issue 33): which it runs on, warns about or
refuses, and what the check measured. No model runs here; the check is what `segment` does before loading one.

    python benchmarks/model_domains.py --out benchmarks/model_domains.json
"""
from __future__ import annotations

import argparse

import numpy as np

from slicerleap.data import mni_t1
from slicerleap.data.invesalius import head_ct, head_ct_available
from slicerleap.data.itk_examples import _folder, itk_example_available, itk_example_brain
from slicerleap.data.lesion_cases import make_lesion_case
from slicerleap.io import read_volume
from slicerleap.json_files import write_json_atomically
from slicerleap.models import get_catalog
from slicerleap.models.domain import check_domain
from slicerleap.transforms import resample_to_spacing


def scans() -> dict:
    mni = mni_t1()
    out = {"MNI ICBM152 T1 template (skull-stripped, 1 mm)": mni,
           "synthetic lesion case 45 (held out, MNI anatomy)": make_lesion_case(45)[0],
           "MNI T1 resampled to 6 mm slices": resample_to_spacing(mni.with_array(mni.array.astype(np.float32)), [1.0, 1.0, 6.0])}
    if itk_example_available():
        out["ITK example brain (skull-stripped T1, 2x2x3 mm)"] = itk_example_brain()[0]
        out["ITK example head before skull stripping"] = read_volume(_folder() / "KmeansTest_T1UCharRaw.nii.gz")
        out["synthetic lesion case 3 in the ITK head"] = make_lesion_case(3, anatomy="itk-head")[0]
    if head_ct_available():
        ct = head_ct()
        out["real head CT (InVesalius), no modality metadata"] = ct.with_array(ct.array, modality="")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    cards = [c for c in get_catalog().cards() if c["task"] == "segmentation" and c.get("domain")]
    rows = []
    for name, scan in scans().items():
        for card in cards:
            check = check_domain(scan, card)
            rows.append({"scan": name, "model": card["id"], **check.as_dict()})
    if args.out:
        write_json_atomically(args.out, {"rows": rows})
    print("| scan | model | outcome | foreground mL | signature distance | finding |\n|---|---|---|---|---|---|")
    for r in rows:
        m = r["measured"]
        print(f"| {r['scan']} | {r['model']} | {r['outcome']} | {m.get('foreground_ml', '—')} | {m.get('intensity_distance', '—')} | "
              f"{r['findings'][0] if r['findings'] else '—'} |")


if __name__ == "__main__":
    main()
