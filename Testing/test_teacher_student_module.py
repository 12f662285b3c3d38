"""The annotators' teacher–student loop on a real MRML scene (slicer-core), every step a worker job:
boxes as ROI nodes (derived from segments and drawn by hand) -> teacher -> pseudo-labels in a review queue
-> an annotator edits one (segment array) and accepts it -> student -> fine-tune on the corrections into a
new model version; the scene saved as .mrb and reloaded keeps the queue, the boxes and the provenance."""
import numpy as np
import pytest
import slicer

from test_module_logics import SKSSegmentationLogic, add_segmentation, add_volume
from slicerleap.errors import BadInputError
from slicerleap.models import get_catalog
from slicerleap.scene import load_mrb, node_to_volume, save_mrb
from slicerleap.scene.boxes import REFERENCE_ROLE, ROLE_ATTRIBUTE, add_box, box_nodes, volume_boxes
from slicerleap.scene.provenance import provenance
from slicerleap.segmentation.boxes import Box
from SKSSegmentationLib.review_queue import ReviewQueue
from SKSSegmentationLib.teacher_student_logic import StrongCase, next_version
from phantoms import organ_lesion_phantom

TINY = {"features": [4, 8, 16, 32, 64], "crop": 32, "batch_size": 2, "iterations_per_epoch": 3}
SPECS = [{"value": 1, "name": "Organ", "color": "#dcaa8c"}, {"value": 2, "name": "Lesion", "color": "#e6194b"}]


def test_boxes_pseudo_labels_review_and_fine_tuning_survive_a_scene_round_trip(scene_ctx, tmp_path, monkeypatch):
    ctx = scene_ctx
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    logic = SKSSegmentationLogic(ctx).teacher_student  # as the panel and console scripts reach it
    strong, weak, truths = [], [], []
    for n in range(5):
        image, labels = organ_lesion_phantom(seed=n)
        volume = add_volume(ctx, image, f"case {n}")
        if n < 2:
            segmentation = add_segmentation(ctx, labels, volume, f"case {n} manual", SPECS)
            logic.mark_manual(segmentation)
            strong.append(StrongCase(volume, segmentation))
        else:
            weak.append(volume)
            truths.append(labels)
            if n < 4:  # boxes derived from an existing segmentation, which then leaves the scene
                reference = add_segmentation(ctx, labels, volume, "reference", SPECS)
                rois = logic.boxes_from_segmentation(volume, reference, "Organ", "Lesion")
                assert [r.GetAttribute(ROLE_ATTRIBUTE) for r in rois] == ["organ", "lesion"]
                ctx.scene.RemoveNode(reference)
            else:  # drawn by hand: one ROI around the lesion only, in RAS mm
                k, j, i = np.argwhere(labels == 2).mean(0)
                centre = _ras(volume, (i, j, k))
                add_box(ctx, volume, Box(centre, [14, 14, 14], "lesion"))
    assert len(volume_boxes(weak[0])) == 2 and len(volume_boxes(weak[2])) == 1

    teacher = logic.create_teacher_job(strong, "test-teacher@1.0.0", iterations=6, **TINY).run(timeout=600)["model"]
    assert teacher["input"]["box_channels"] == 2 and teacher["architecture"]["args"]["box_conditioning"] == "o2l"

    with pytest.raises(BadInputError, match="has no boxes"):
        logic.create_pseudolabel_job([strong[0].volume], teacher["id"])
    queue = logic.pseudolabel(weak, teacher["id"], timeout=600)
    assert len(queue) == 3 and queue.counts()["pending"] == 3
    rows = queue.rows()
    assert [r["volume"] for r in rows] == weak and all(r["provenance"] == "pseudo" for r in rows)
    assert all(tags["SlicerLeap.provenance"] == "pseudo" and tags["SlicerLeap.model"] == teacher["id"]
               for tags in provenance(rows[0]["segmentation"]).values())

    first = logic.next_case()  # the scene's queue
    assert first["uncertainty"] == max(r["uncertainty"] for r in rows)
    # the annotator corrects it in Segment Editor: the lesion segment becomes the true lesion
    segmentation, volume = first["segmentation"], first["volume"]
    truth = truths[weak.index(volume)]
    for name, value in (("Organ", 1), ("Lesion", 2)):
        segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(name)
        if not segment_id:
            segment_id = segmentation.GetSegmentation().AddEmptySegment(name, name)
        _paint(segmentation, segment_id, node_to_volume(volume).with_array((truth == value).astype(np.uint8)))
    assert logic.decide(first["row"], "accept")["provenance"] == "corrected"
    assert {t["SlicerLeap.provenance"] for t in provenance(segmentation).values()} == {"corrected"}
    second = queue.next_case()
    assert queue.accept(second["row"])["provenance"] == "pseudo"  # accepted unchanged
    third = queue.next_case()
    queue.skip(third["row"])
    assert queue.next_case()["row"] == third["row"] and logic.queue_counts() == {"pending": 0, "skipped": 1, "accepted": 2, "rejected": 0}

    job = logic.create_student_job(strong, queue, teacher["id"], "test-student@1.0.0", iterations=6, **TINY)
    assert len(job.inputs["labels"]) == 4 and len(job.inputs["pseudo_images"]) == 1
    student = job.run(timeout=600)["model"]
    assert "box_channels" not in student["input"] and student["training"]["teacher"] == teacher["id"]
    assert not any(k.startswith("localisation") for k in _weights(student))  # the branch is dropped

    queue.reject(third["row"])
    # the student is in the catalog now, so the panel's student button fine-tunes it into its next version
    tuned = logic.create_next_student_job(strong, teacher["id"], student["id"], iterations=4, **TINY).run(timeout=600)["model"]
    assert tuned["id"] == "test-student@1.1.0" and tuned["training"]["fine_tuned_from"] == student["id"]
    assert {c["id"] for c in get_catalog().cards()} >= {teacher["id"], student["id"], tuned["id"]}
    assert next_version(student["id"]) == "test-student@1.2.0"

    save_mrb(ctx, tmp_path / "review.mrb")
    loaded = load_mrb(tmp_path / "review.mrb")
    again = ReviewQueue.find(loaded)
    assert [(r["case"], r["status"], r["provenance"], round(r["uncertainty"], 4)) for r in again.rows()] == \
        [(r["case"], r["status"], r["provenance"], round(r["uncertainty"], 4)) for r in queue.rows()]
    by_case = {r["case"]: r for r in again.rows()}
    corrected = by_case[first["case"]]
    assert corrected["volume"].GetName() == first["case"]
    assert {t["SlicerLeap.provenance"] for t in provenance(corrected["segmentation"]).values()} == {"corrected"}
    reloaded_volume = loaded.scene.GetFirstNodeByName("case 2")
    assert [r.GetAttribute(ROLE_ATTRIBUTE) for r in box_nodes(reloaded_volume)] == ["organ", "lesion"]
    assert np.allclose(volume_boxes(reloaded_volume)[1].center, volume_boxes(weak[0])[1].center)
    manual = loaded.scene.GetFirstNodeByName("case 0 manual")
    assert {t["SlicerLeap.provenance"] for t in provenance(manual).values()} == {"manual"}
    assert reloaded_volume.GetNumberOfNodeReferences(REFERENCE_ROLE) == 2


def _paint(segmentation_node, segment_id, mask):
    """What a Segment Editor edit does: replace the segment's voxels with `mask` (a Volume)."""
    from slicerleap.scene.segmentations import _oriented_labelmap

    logic = slicer.vtkSlicerSegmentationsModuleLogic
    logic.SetBinaryLabelmapToSegment(_oriented_labelmap(mask), segmentation_node, segment_id, logic.MODE_REPLACE)


def _ras(volume_node, ijk):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array(matrix.MultiplyPoint([*ijk, 1.0])[:3])


def _weights(card):
    from safetensors import safe_open

    with safe_open(card["_path"], "pt") as f:
        return list(f.keys())
