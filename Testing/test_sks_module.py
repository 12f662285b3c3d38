"""SKSSegmentation's Qt-free logic on a real MRML scene: slice-level labels as table nodes (edited, saved in
a .mrb, reloaded), label-kind counts for the panel, SKS training from scene nodes in a worker, and
segmenting with the newly registered model into a segmentation node."""
import numpy as np
import pytest

from test_module_logics import PHANTOM_LABELS, SPACING, SKSSegmentationLogic, add_segmentation, add_volume, phantom
from slicerleap.errors import BadInputError
from slicerleap.scene import load_mrb, new_scene_context, save_mrb
from slicerleap.scene.slice_labels import read_slice_labels, set_lesion_ranges, set_slice_labels, slice_label_table
from SKSSegmentationLib.logic import TrainingCase

TINY = {"sks": {"embed_dim": 8, "depths": [1, 1, 1], "num_heads": [1, 1, 2], "window": 4}, "crop": 32, "batch_size": 2}


def test_slice_label_tables_are_editable_scene_state(tmp_path):
    ctx = new_scene_context()
    image, _ = phantom()
    volume = add_volume(ctx, image, "case")
    table = slice_label_table(ctx, volume)
    assert slice_label_table(ctx, volume) is table and (read_slice_labels(table) == -1).all()
    set_lesion_ranges(table, [[10, 20]])
    flags = read_slice_labels(table)
    assert flags[10:21].all() and flags.sum() == 11 and (flags >= 0).all()
    table.GetTable().GetColumnByName("lesion").SetValue(3, 1)  # a user edit in the Tables module
    save_mrb(ctx, tmp_path / "scene.mrb")
    loaded = load_mrb(tmp_path / "scene.mrb")
    reloaded = loaded.scene.GetFirstNodeByName("case")
    again = read_slice_labels(reloaded.GetNodeReference("SlicerLeap.sliceLabels"))
    assert again[3] == 1 and again[10:21].all() and again.sum() == 12
    with pytest.raises(BadInputError, match="slices"):
        set_slice_labels(table, [1, 0])


def test_logic_trains_sks_from_scene_nodes_and_segments_with_it(scene_ctx, tmp_path, monkeypatch):
    ctx = scene_ctx
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    logic = SKSSegmentationLogic(ctx)
    cases = []
    for n in range(4):
        image, labels = phantom((n - 2, 1 - n, 0), seed=10 + n)
        volume = add_volume(ctx, image, f"sks case {n}")
        rows = np.flatnonzero((labels == 1).reshape(labels.shape[0], -1).any(1))
        if n < 2:  # pixel labels: the bright sphere is "the lesion", the dim one is other anatomy
            cases.append(TrainingCase(volume, add_segmentation(ctx, labels, volume, f"sks seg {n}"), segment="Bright sphere"))
        elif n == 2:
            set_lesion_ranges(slice_label_table(ctx, volume), [[int(rows[0]), int(rows[-1])]])
            cases.append(TrainingCase(volume))
        else:
            cases.append(TrainingCase(volume, lesion_ranges=[[int(rows[0]), int(rows[-1])]]))
    cases.append(TrainingCase(add_volume(ctx, phantom(seed=99)[0], "not looked at yet")))
    slice_label_table(ctx, cases[-1].volume)  # a table with every slice unknown: still unlabelled
    assert logic.count_label_kinds(cases) == {"pixel": 2, "slice": 2, "unlabelled": 1}
    found = logic.cases_from_volumes([c.volume for c in cases], segment="Bright sphere")  # what the panel does
    assert [c.segmentation for c in found[:2]] == [c.segmentation for c in cases[:2]] and found[0].segment == "Bright sphere"
    assert logic.count_label_kinds(found) == {"pixel": 2, "slice": 1, "unlabelled": 2}  # ranges are not scene state

    job = logic.create_training_job(cases, "scene-sks@0.1.0", iterations=4, coarse_iterations=2, **TINY)
    assert len(job.inputs["slice_images"]) == 2 and job.spec.params["slice_labels"][0]["flags"][int(rows[0])] == 1
    records = []
    card = job.run(on_progress=records.append, timeout=600)["model"]
    assert card["id"] == "scene-sks@0.1.0" and card["architecture"]["name"] == "slicerleap.SKSNet"
    assert any("stage 1" in r.get("message", "") for r in records) and any("stage 2" in r.get("message", "") for r in records)
    assert card["id"] in [c["id"] for c in logic.available_models()]

    target = add_volume(ctx, phantom((1, 1, 0), seed=50)[0], "to segment")
    nodes_before = ctx.scene.GetNumberOfNodes()
    outputs = logic.process(target, model_id="scene-sks@0.1.0", probability=True)
    segmentation = outputs["segmentation"]
    assert segmentation.GetAttribute("SlicerLeap.model") == "scene-sks@0.1.0"
    assert ctx.scene.GetNumberOfNodes() > nodes_before

    with pytest.raises(BadInputError, match="no segment named"):
        logic.create_training_job([TrainingCase(cases[0].volume, cases[0].segmentation, segment="Tumour")])
    with pytest.raises(BadInputError, match="at least one case"):
        logic.create_training_job(cases[2:])
    assert PHANTOM_LABELS[0]["name"] == "Bright sphere"


def test_the_panels_scene_edits_and_decisions_are_in_the_logic(scene_ctx):
    """What the panel's buttons ask of the module's one Logic, without a worker: slice labels, boxes (centred in the
    volume, in RAS), the cases with masks and the box-labelled ones, the review queue's absence, the training
    defaults and what a trained model is for. The teacher–student and text-prompt logics share its scene."""
    from slicerleap.scene import node_to_volume
    from slicerleap.scene.boxes import ROLE_ATTRIBUTE, volume_boxes

    ctx = scene_ctx
    logic = SKSSegmentationLogic(ctx)
    assert logic.teacher_student.ctx is ctx and logic.text_prompt.ctx is ctx
    image, labels = phantom()
    volume = add_volume(ctx, image, "panel case")
    table = logic.mark_lesion_slices(volume, 10, 12)
    assert table is logic.slice_table(volume) and read_slice_labels(table)[9:14].tolist() == [0, 1, 1, 1, 0]
    assert (read_slice_labels(logic.mark_lesion_slices(volume, 20, 20)) == 1).sum() == 4  # marks add up
    assert (read_slice_labels(logic.mark_no_lesion(volume)) == 0).all()
    with pytest.raises(BadInputError, match="No volume whose slices you label"):
        logic.mark_no_lesion(None)

    ts = logic.teacher_student
    box = ts.add_box(volume, "organ")
    (organ,) = volume_boxes(volume)
    corners = [node_to_volume(volume).ijk_to_ras @ np.r_[ijk, 1.0] for ijk in ((0, 0, 0), np.array(image.shape[::-1]) - 1)]
    np.testing.assert_allclose(organ.center, (corners[0][:3] + corners[1][:3]) / 2, atol=1e-4)
    np.testing.assert_allclose(organ.size, np.array(image.shape[::-1]) * SPACING / 2, atol=1e-4)  # an organ box: half the extent
    assert box.GetAttribute(ROLE_ATTRIBUTE) == "organ"
    with pytest.raises(BadInputError, match="has no segmentation to draw boxes around"):
        ts.boxes_from_segmentation(volume)
    segmentation = add_segmentation(ctx, labels, volume, "panel seg", [{**PHANTOM_LABELS[0], "name": "Organ"},
                                                                         {**PHANTOM_LABELS[1], "name": "Lesion"}])
    assert len(ts.boxes_from_segmentation(volume)) == 2  # the segmentation drawn on the volume, found in the scene
    boxed = add_volume(ctx, phantom(seed=3)[0], "boxed case")
    strong, weak = ts.split_cases(logic.cases_from_volumes([volume, boxed]))
    assert [(c.volume, c.segmentation, c.organ_segments) for c in strong] == [(volume, segmentation, ("Organ",))] and weak == [boxed]
    assert ts.queue_counts() is None and ts.next_case() is None
    with pytest.raises(BadInputError, match="no review queue"):
        ts.decide(0, "accept")
    job = ts.create_next_student_job(strong, None, "panel-student@1.0.0", iterations=4)  # not in the catalog: trained anew
    assert job.spec.params["model_id"] == "panel-student@1.0.0" and "start_from" not in job.spec.params

    cases = [TrainingCase(volume, segmentation, segment="Lesion")]
    assert logic.create_training_job(cases, "panel-sks@0.1.0", iterations=8).spec.params["config"]["coarse_iterations"] == 6
    assert logic.text_prompt.create_training_job(cases, "panel-mptpn@0.1.0", iterations=8).spec.params["config"]["pretrain_iterations"] == 4
    card = {"task": "segmentation", "input": {}, "architecture": {"name": "slicerleap.SKSNet"}}
    assert [logic.model_role(c) for c in (card, {**card, "input": {"box_channels": 2}}, {**card, "architecture": {"name": "slicerleap.BoxUNet"}},
                                          {**card, "task": "text-segmentation"})] == ["segmentation", "teacher", "student", "text"]
