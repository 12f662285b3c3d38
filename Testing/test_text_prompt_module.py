"""SKSSegmentation's text-prompt logic on a real MRML scene (slicer-core) with real workers: a tiny MPTPN trained
from segmentation nodes (task train-mptpn, registered in the catalog), prompts built from a click and a box,
segmenting what a prompt describes into a segmentation node (task segment-text), and a batch of rows."""
import numpy as np
import pytest

from test_module_logics import SKSSegmentationLogic, add_segmentation, add_volume, node_to_volume, phantom
from slicerleap.errors import BadInputError
from slicerleap.scene.boxes import add_box
from slicerleap.segmentation.boxes import Box
from SKSSegmentationLib.logic import TrainingCase

TINY = {"img_size": 32, "net": {"channels": 4, "patch": 8, "heads": 1}, "batch_size": 2}


def sphere_centre_ras(volume_node, labels, value=1):
    voxels = np.argwhere(labels == value).mean(0)[::-1]  # (i, j, k)
    return (node_to_volume(volume_node).ijk_to_ras @ np.r_[voxels, 1.0])[:3]


def test_logic_trains_mptpn_from_the_scene_and_segments_what_a_prompt_describes(scene_ctx, tmp_path, monkeypatch):
    ctx = scene_ctx
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    logic = SKSSegmentationLogic(ctx).text_prompt  # as the panel and console scripts reach it
    cases = []
    for n in range(3):
        image, labels = phantom((n - 1, 1 - n, 0), seed=20 + n)
        volume = add_volume(ctx, image, f"text case {n}")
        cases.append(TrainingCase(volume, add_segmentation(ctx, labels, volume, f"text seg {n}"), segment="Bright sphere"))
    records = []
    card = logic.train(cases, "scene-mptpn@0.1.0", iterations=3, pretrain_iterations=2, on_progress=records.append, timeout=600, **TINY)
    assert card["task"] == "text-segmentation" and card["architecture"]["name"] == "slicerleap.MPTPN"
    assert "all-MiniLM-L6-v2" in card["input"]["text_prompt"]["encoder"] and "BERT-base" in card["input"]["text_prompt"]["differs_from_paper"]
    assert any("stage 1" in r.get("message", "") for r in records) and any("stage 2" in r.get("message", "") for r in records)
    assert [c["id"] for c in logic.available_models()] == ["scene-mptpn@0.1.0"]

    image, labels = phantom((1, 0, 0), seed=40)
    target = add_volume(ctx, image, "to prompt")
    centre = sphere_centre_ras(target, labels)
    points = ctx.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "clicks")
    points.AddControlPointWorld(*centre)
    prompt, slab = logic.prompt_from_points(target, points, size="medium")
    assert prompt.startswith("one medium round lesion in the ") and slab == pytest.approx([centre[2]] * 2)
    roi = add_box(ctx, target, Box(centre, [14.0, 14.0, 14.0], "lesion"))
    box_prompt, box_slab = logic.prompt_from_roi(target, roi)
    assert box_prompt.split(" in the ")[-1] == prompt.split(" in the ")[-1] and box_slab[0] < centre[2] < box_slab[1]

    nodes_before = ctx.scene.GetNumberOfNodes()
    out = logic.segment(target, prompt, slab_mm=slab, probability=True, timeout=600)
    segmentation = out["segmentation"]
    assert segmentation.GetAttribute("SlicerLeap.prompt") == prompt and segmentation.GetAttribute("SlicerLeap.model") == "scene-mptpn@0.1.0"
    assert segmentation.GetNodeReference(segmentation.GetReferenceImageGeometryReferenceRole()) is target
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 1 and out["probability"] is not None
    assert ctx.scene.GetNumberOfNodes() > nodes_before

    second = add_volume(ctx, phantom((0, 1, 0), seed=41)[0], "second")
    table = ctx.scene.AddNewNodeByClass("vtkMRMLTableNode", "prompts")  # what a user fills in the Tables module
    for column in ("volume", "prompt", "s1", "s2"):
        table.AddColumn().SetName(column)
    for values in (("to prompt", "one small round lesion in the centre", "", ""), ("second", prompt, str(slab[0]), str(slab[1]))):
        row = table.AddEmptyRow()
        for c, value in enumerate(values):
            table.SetCellText(row, c, value)
    rows = logic.rows_from_table(table)
    assert [(r[0], r[2]) for r in rows] == [(target, None), (second, pytest.approx(slab))]
    results = logic.segment_batch(rows, timeout=600)
    assert [r["segmentation"].GetAttribute("SlicerLeap.prompt") for r in results] == ["one small round lesion in the centre", prompt]

    count = ctx.scene.GetNumberOfNodes()
    with pytest.raises(BadInputError, match="no prompt"):
        logic.segment_batch([(target, "lesion"), (second, " ")])
    table.SetCellText(0, 0, "no such volume")
    with pytest.raises(BadInputError, match="not a volume in the scene"):
        logic.rows_from_table(table)
    with pytest.raises(BadInputError, match="prompt is empty"):
        logic.create_job(target, "")
    with pytest.raises(BadInputError, match="not a segmentation model"):
        SKSSegmentationLogic(ctx).create_job(target, "scene-mptpn@0.1.0")
    assert ctx.scene.GetNumberOfNodes() == count  # refused jobs leave the scene as it was
    with pytest.raises(BadInputError, match="segmentation of the target"):
        logic.create_training_job([TrainingCase(target)])
