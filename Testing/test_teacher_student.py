"""Teacher–student engine: boxes in physical space on any grid, the O2L teacher and the student's
dropped localisation branch, learning on phantoms, and the CLI (boxes -> teacher -> pseudolabel -> student)."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from phantoms import organ_lesion_phantom
from slicerleap import Volume
from slicerleap.cli import main
from slicerleap.errors import BadInputError
from slicerleap.io import read_volume, write_volume
from slicerleap.segmentation.boxes import Box, box_map, boxes_from_labels, perturb_boxes, read_boxes, write_boxes
from slicerleap.segmentation.slice_data import slice_input_spec
from slicerleap.segmentation.teacher_student.nets import BoxUNet, inference_state
from slicerleap.segmentation.teacher_student.training import (
    TeacherStudentConfig, evaluate, prepare_box_case, pseudo_label, train_box_unet)

OBLIQUE = np.array([[0.94, -0.34, 0.0], [0.34, 0.94, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([-1.0, -1.0, 1.0])
TINY = TeacherStudentConfig(features=(8, 16, 32, 64, 128), crop=32, batch_size=4, iterations=250, iterations_per_epoch=125)


def case_volumes(seed, directions=OBLIQUE, spacing=(1.5, 1.5, 2.0)):
    image, labels = organ_lesion_phantom(seed)
    return (Volume.from_geometry(image.astype(np.float32), spacing, (20.0, -10.0, 5.0), directions),
            Volume.from_geometry(labels, spacing, (20.0, -10.0, 5.0), directions))


def test_boxes_from_labels_circumscribe_each_lesion_on_an_oblique_grid():
    _, labels = case_volumes(0)
    boxes = boxes_from_labels(labels)
    assert [b.role for b in boxes] == ["organ", "lesion"]
    m = box_map(labels, boxes)
    lesion = labels.array == 2
    kk, jj, ii = np.nonzero(lesion)
    expected = np.zeros_like(lesion)
    expected[kk.min():kk.max() + 1, jj.min():jj.max() + 1, ii.min():ii.max() + 1] = True
    assert np.array_equal(m == 2, expected)  # the box is exactly the lesion's voxel extent
    assert (m[labels.array == 1] >= 1).all()


def test_a_ras_box_covers_the_same_physical_region_on_any_grid():
    box = Box([12.0, 5.0, 30.0], [12.0, 8.0, 10.0], "lesion", np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0])
    volumes = []
    for directions, spacing in ((np.eye(3), (1.0, 1.0, 1.0)), (OBLIQUE, (0.8, 1.2, 2.0))):
        origin = box.center - directions @ (np.array(spacing) * (np.array([60, 60, 40]) - 1) / 2)  # grid centred on the box
        grid = Volume.from_geometry(np.zeros((40, 60, 60), np.float32), spacing, origin, directions)
        inside = box_map(grid, [box]) == 2
        volumes.append(inside.sum() * np.prod(spacing))
        centre = np.linalg.solve(grid.ijk_to_ras[:3, :3], box.center - grid.ijk_to_ras[:3, 3]).round().astype(int)
        assert inside[centre[2], centre[1], centre[0]]
    assert volumes[0] == pytest.approx(960.0, rel=0.1) and volumes[1] == pytest.approx(960.0, rel=0.15)


def test_box_files_round_trip_and_bad_boxes_are_refused(tmp_path):
    boxes = boxes_from_labels(case_volumes(1)[1])
    again = read_boxes(write_boxes(boxes, tmp_path / "case.json"))
    assert [(b.role, b.center.round(3).tolist(), b.size.round(3).tolist()) for b in again] == \
        [(b.role, b.center.round(3).tolist(), b.size.round(3).tolist()) for b in boxes]
    (tmp_path / "bad.json").write_text('{"boxes": [{"center": [0, 0]}]}', encoding="utf-8")
    with pytest.raises(BadInputError, match="Could not read boxes"):
        read_boxes(tmp_path / "bad.json")
    with pytest.raises(BadInputError, match="positive length"):
        Box([0, 0, 0], [5, 0, 5])
    with pytest.raises(BadInputError, match="role"):
        Box([0, 0, 0], [5, 5, 5], role="tumour")


def test_perturbed_boxes_stay_within_the_papers_ranges():
    rng = np.random.default_rng(0)
    boxes = [Box([0, 0, 0], [100, 100, 100], "organ"), Box([0, 0, 0], [10, 10, 10], "lesion")]
    for _ in range(50):
        organ, lesion = perturb_boxes(boxes, rng)
        assert np.all(organ.size > 100 * 0.95 * 0.9 - 1e-6) and np.all(organ.size < 100 * 1.1 * 1.1 + 1e-6)
        assert np.all(np.abs(organ.center) <= 100 * 1.1 / 20 + 1e-6)
        assert np.all(lesion.size > 10 * 0.9 * 0.8 - 1e-6) and np.all(lesion.size < 10 * 1.2 * 1.2 + 1e-6)


def test_the_teacher_reads_its_boxes_and_the_student_drops_its_branch():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    boxes = torch.zeros(2, 2, 32, 32)
    moved = boxes.clone()
    moved[:, 1, 8:16, 8:16] = 1
    for conditioning, reads_boxes in (("o2l", True), ("multichannel", True), ("none", False)):
        teacher = BoxUNet(features=(4, 8, 16, 32, 64), box_conditioning=conditioning).eval()
        with torch.no_grad():
            changed = not torch.allclose(teacher(torch.cat([x, boxes], 1)), teacher(torch.cat([x, moved], 1)))
        assert changed == reads_boxes, conditioning
    student = BoxUNet(features=(4, 8, 16, 32, 64), localisation=True).eval()
    seg, loc = student.forward_with_localisation(x)
    assert seg.shape == loc.shape == (2, 3, 32, 32)
    deployed = BoxUNet(features=(4, 8, 16, 32, 64)).eval()
    deployed.load_state_dict(inference_state(student))  # strict: nothing missing, nothing extra
    with torch.no_grad():
        assert torch.allclose(deployed(x), seg, atol=1e-6)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_teacher_learns_lesions_from_boxes_and_its_pseudo_labels_are_soft(precision):
    spec = slice_input_spec(1.5)
    cases = [prepare_box_case(image, spec, boxes, labels) for image, boxes, labels in map(_image_and_boxes, range(4))]
    teacher, history, _ = train_box_unet("teacher", cases[:3], [], replace(TINY, precision=precision), "cpu")
    scores = evaluate(teacher, cases[3:], "cpu")
    assert scores["organ_dice"] > 0.8 and scores["lesion_dice"] > 0.4, scores
    soft, uncertainty = pseudo_label(teacher, cases[3], "cpu")
    assert soft.shape == (3,) + cases[3].image.shape and np.allclose(soft.astype(np.float32).sum(0), 1, atol=1e-2)
    assert 0.0 <= uncertainty <= 1.0


def _image_and_boxes(seed):
    image, labels = case_volumes(seed)
    return image, boxes_from_labels(labels), labels


def test_segment_refuses_a_teacher(tmp_path):
    from slicerleap.segmentation.inference import segment_volume

    card = {"id": "t@1.0.0", "input": {**slice_input_spec(1.5), "box_channels": 2}, "labels": []}
    with pytest.raises(BadInputError, match="teacher annotator"):
        segment_volume(case_volumes(0)[0], card, None, "cpu")


def test_cli_boxes_teacher_pseudolabel_student(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLICERLEAP_HOME", str(tmp_path / "home"))
    for folder in ("images", "labels", "weak"):
        (tmp_path / folder).mkdir()
    for seed in range(4):
        image, labels = case_volumes(seed)
        if seed < 2:
            write_volume(image, tmp_path / "images" / f"case{seed}.nrrd")
            write_volume(labels, tmp_path / "labels" / f"case{seed}.nrrd")
        else:
            write_volume(image, tmp_path / "weak" / f"case{seed}.nrrd")
            write_volume(labels, tmp_path / "truth.nrrd" if seed == 2 else tmp_path / f"truth{seed}.nrrd")
    assert main(["boxes", "--labels", str(tmp_path / "truth.nrrd"), "--out", str(tmp_path / "boxes" / "case2.json")]) == 0
    assert main(["boxes", "--labels", str(tmp_path / "truth3.nrrd"), "--out", str(tmp_path / "boxes" / "case3.json")]) == 0
    assert main(["train", "teacher", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"),
                 "--out", str(tmp_path / "teacher"), "--id", "cli-teacher@1.0.0", "--iterations", "4"]) == 0
    teacher_card = json.loads((tmp_path / "teacher" / "card.json").read_text(encoding="utf-8"))
    assert 0.1 < teacher_card["training"]["lesion_box_fill"] < 0.9  # how true lesions fill their boxes: the uncertainty's reference
    assert main(["pseudolabel", "--model", "cli-teacher@1.0.0", "--input", str(tmp_path / "weak"), "--boxes", str(tmp_path / "boxes"),
                 "--output", str(tmp_path / "pseudo")]) == 0
    queue = json.loads((tmp_path / "pseudo" / "uncertainty.json").read_text(encoding="utf-8"))
    assert [q["case"] for q in queue] and sorted(q["case"] for q in queue) == ["case2", "case3"]
    assert queue[0]["uncertainty"] >= queue[1]["uncertainty"]
    pseudo, image = read_volume(tmp_path / "pseudo" / "case2.nrrd"), read_volume(tmp_path / "weak" / "case2.nrrd")
    assert pseudo.array.shape == image.array.shape and np.allclose(pseudo.ijk_to_ras, image.ijk_to_ras)
    assert main(["segment", "--model", "cli-teacher@1.0.0", "--input", str(tmp_path / "weak" / "case2.nrrd"),
                 "--output", str(tmp_path / "x.nrrd")]) == 2  # a teacher needs boxes
    assert main(["train", "student", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"),
                 "--weak-images", str(tmp_path / "weak"), "--boxes", str(tmp_path / "boxes"), "--teacher", "cli-teacher@1.0.0",
                 "--out", str(tmp_path / "student"), "--id", "cli-student@1.0.0", "--iterations", "4", "--precision", "bf16"]) == 0
    card = json.loads((tmp_path / "student" / "card.json").read_text(encoding="utf-8"))
    assert card["training"]["teacher"] == "cli-teacher@1.0.0" and "box_channels" not in card["input"]
    assert card["training"]["precision"] == "bf16" and teacher_card["training"]["precision"] == "fp32"
    assert main(["segment", "--model", "cli-student@1.0.0", "--input", str(tmp_path / "weak" / "case3.nrrd"),
                 "--output", str(tmp_path / "student.nrrd")]) == 0
    assert "teacher annotator" in capsys.readouterr().err
