"""Models that know their domain (issue 33): each segmentation card declares modality, region, skull stripping, voxel
sizes and an intensity signature; a scan outside is refused before any work (exit 2, the problem and the fix) unless
forced, and a scan at the edge gets a warning in result.json. Checked on real scans: the MNI template and ITK's
example brain (fine), ITK's example head before skull stripping, a real head CT (refused)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from slicerleap.data import mni_t1, sample_data_available
from slicerleap.data.invesalius import head_ct, head_ct_available
from slicerleap.data.itk_examples import itk_example_available, itk_example_brain
from slicerleap.errors import BadInputError
from slicerleap.io import read_volume, write_volume
from slicerleap.models import get_catalog
from slicerleap.models.domain import check_domain, require_domain
from slicerleap.transforms import resample_to_spacing

pytestmark = pytest.mark.skipif(not sample_data_available(), reason="needs the MNI template from nilearn")
needs_itk = pytest.mark.skipif(not itk_example_available(), reason="needs Debian's insighttoolkit5-examples")
needs_ct = pytest.mark.skipif(not head_ct_available(), reason="needs Debian's invesalius-examples")
MODELS = ("brain-lesion-sks@1.0.0", "brain-tissue-unet@1.0.0")


def card(model_id):
    return get_catalog().resolve(model_id, "segmentation", "segment")


def itk_raw_head():
    from slicerleap.data.itk_examples import _folder

    return read_volume(_folder() / "KmeansTest_T1UCharRaw.nii.gz")


@pytest.mark.parametrize("model_id", MODELS)
def test_skull_stripped_t1_brains_are_in_the_domain(model_id):
    assert check_domain(mni_t1(), card(model_id)).outcome == "fine"
    if itk_example_available():  # another subject and scanner, 2 x 2 x 3 mm
        check = check_domain(itk_example_brain()[0], card(model_id))
        assert check.outcome == "fine", check.findings


@needs_itk
@pytest.mark.parametrize("model_id", MODELS)
def test_a_head_with_skull_and_scalp_is_refused_unless_forced(model_id):
    head = itk_raw_head()
    with pytest.raises(BadInputError, match="skull-stripped") as refused:
        require_domain(head, card(model_id))
    assert "--force" in str(refused.value)
    seen = []
    check = require_domain(head, card(model_id), force=True, report=lambda f, stage, message, **k: seen.append(message))
    assert check.outcome == "refused" and seen and seen[0].startswith("Forced:")


@needs_ct
def test_a_real_head_ct_is_refused_by_the_mr_models_with_or_without_metadata():
    ct = head_ct()
    for scan in (ct, ct.with_array(ct.array, modality="")):  # as a NIfTI without a modality would arrive
        for model_id in MODELS:
            check = check_domain(scan, card(model_id))
            assert check.outcome == "refused" and "looks like CT" in check.findings[0], check.findings


def test_thick_slices_and_another_contrast_are_warned_about():
    mni = mni_t1()
    thick = resample_to_spacing(mni.with_array(mni.array.astype(np.float32)), [1.0, 1.0, 6.0])
    check = check_domain(thick, card("brain-lesion-sks@1.0.0"))
    assert check.outcome == "warning" and any("6 mm" in f for f in check.findings), check.findings
    t2_like = mni.with_array(np.where(mni.array > 0, mni.array.max() + 20.0 - mni.array, 0.0).astype(np.float32))
    check = check_domain(t2_like, card("brain-lesion-sks@1.0.0"))
    assert check.outcome == "warning" and any("intensities differ" in f for f in check.findings), check.findings


def test_a_card_without_a_domain_is_not_checked_and_says_so():
    bare = {k: v for k, v in card("brain-lesion-sks@1.0.0").items() if k != "domain"}
    check = check_domain(mni_t1(), bare)
    assert check.outcome == "unknown" and "declares no domain" in check.findings[0]


@needs_ct
def test_segment_refuses_the_ct_before_any_work_and_writes_nothing(tmp_path):
    scan = write_volume(head_ct(), tmp_path / "ct.nii.gz")
    out = subprocess.run([sys.executable, "-m", "slicerleap.cli", "segment", "--input", str(scan), "--output", str(tmp_path / "seg.nrrd")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "looks like CT" in out.stderr and "--force" in out.stderr
    assert not (tmp_path / "seg.nrrd").exists()


@needs_itk
def test_segment_with_force_runs_and_records_the_domain_check(tmp_path):
    scan = write_volume(itk_raw_head(), tmp_path / "head.nii.gz")
    command = [sys.executable, "-m", "slicerleap.cli", "segment", "--input", str(scan), "--output", str(tmp_path / "seg.nrrd"),
               "--model", "brain-tissue-unet@1.0.0", "--force", "--brain-mask", "off"]  # as is, not skull-stripped first
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads(out.stdout[out.stdout.index("{"):])
    assert metrics["domain"]["outcome"] == "refused" and metrics["domain"]["measured"]["foreground_ml"] > 2200
    assert "Forced:" in out.stderr + out.stdout
    assert (tmp_path / "seg.nrrd").exists()


def test_models_list_is_a_table_with_each_tasks_default_marked_and_json_for_scripts():
    out = subprocess.run([sys.executable, "-m", "slicerleap.cli", "models", "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    default_rows = [line for line in out.stdout.splitlines() if line.startswith("*  ")]
    assert {line.split()[2] for line in default_rows} >= {"segmentation", "registration"}, out.stdout
    assert any("brain-lesion-sks@1.0.0" in line and "skull-stripped" in line for line in default_rows), out.stdout
    out = subprocess.run([sys.executable, "-m", "slicerleap.cli", "models", "list", "--json"], capture_output=True, text=True, timeout=120)
    cards = [json.loads(line) for line in out.stdout.splitlines()]
    assert {"brain-lesion-sks@1.0.0", "brain-tm-dca@1.0.0"} <= {c["id"] for c in cards}


def test_a_label_over_most_of_the_tissue_or_outside_it_is_reported():
    from slicerleap.models.domain import check_result

    mni = mni_t1()
    sks = card("brain-lesion-sks@1.0.0")
    inside = mni.array > np.percentile(mni.array, 90)  # bright tissue: a plausible share of the brain
    small = np.zeros(mni.array.shape, np.int16)
    small[tuple(np.argwhere(inside)[:2000].T)] = 1
    assert check_result(mni, small, sks) == []
    everything = np.where(mni.array > 0, 1, 0).astype(np.int16)
    assert any("covers" in f for f in check_result(mni, everything, sks))
    outside = np.zeros(mni.array.shape, np.int16)
    outside[:5, :5, :5] = 1  # a corner of air
    assert any("outside the scanned tissue" in f for f in check_result(mni, outside, sks))


@needs_ct
def test_register_refuses_a_ct_pair_for_the_mr_brain_network_before_any_work(tmp_path):
    """The registration networks declare their domain too (MR brains): a CT pair is refused with the fix; a scan that
    is only unusual (a head with skull) gets warnings, because the refinement on the pair still works."""
    ct = write_volume(head_ct(), tmp_path / "ct.nii.gz")
    out = subprocess.run([sys.executable, "-m", "slicerleap.cli", "register", "--fixed", str(ct), "--moving", str(ct),
                          "--out-transform", str(tmp_path / "t.h5"), "--method", "network"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "looks like CT" in out.stderr and "--method optimisation" in out.stderr and "--force" in out.stderr
    assert not (tmp_path / "t.h5").exists()
    tm_dca = get_catalog().resolve("brain-tm-dca@1.0.0", "registration")
    assert check_domain(itk_raw_head(), tm_dca).outcome == "warning"
