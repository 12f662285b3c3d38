"""The teacher–student benchmark's seeds take longer than a session: a seed cut short must go on from its
saved record and end with the record an uninterrupted run writes (phantoms, a few iterations)."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from phantoms import organ_lesion_phantom
from slicerleap import Volume
from slicerleap.segmentation.boxes import boxes_from_labels
from slicerleap.segmentation.slice_data import slice_input_spec
from slicerleap.segmentation.teacher_student.training import prepare_box_case

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import teacher_student_boxes as bench  # noqa: E402

ARGS = argparse.Namespace(teacher_iterations=3, crop=32, batch=2, eval_every=3, precision="fp32", student_iterations=3,
                          student_crop=32, student_lesion_fraction=0.8, teachers_only=False, finetune_iterations=2, rounds=1, k=1)


class CutShort(Exception):
    pass


def box_case(seed):
    image, labels = organ_lesion_phantom(seed, size=24)
    image = Volume.from_geometry(image.astype(np.float32), (1.5, 1.5, 2.0), (0.0, 0.0, 0.0), np.diag([-1.0, -1.0, 1.0]))
    labels = image.with_array(labels)
    return prepare_box_case(image, slice_input_spec(1.5), boxes_from_labels(labels), labels)


@pytest.fixture(scope="module")
def cohort():
    return [box_case(seed) for seed in range(10)], [box_case(10)]


def without_seconds(x):
    if isinstance(x, dict):
        return {k: without_seconds(v) for k, v in x.items() if k != "seconds"}
    return [without_seconds(v) for v in x] if isinstance(x, list) else x


def run(cohort, **kwargs):
    messages = []
    record = bench.run_seed(0, *cohort, ARGS, "cpu", messages.append, **kwargs)
    return json.loads(json.dumps(record)), messages  # as the results file holds it


def saves_until_cut_short(cohort, n):
    """The records a run saves before it is stopped at its n-th save, as the results file holds them."""
    saves = []

    def save_then_stop(record):
        saves.append(json.loads(json.dumps(record)))
        if len(saves) == n:
            raise CutShort

    with pytest.raises(CutShort):
        run(cohort, save=save_then_stop)
    return saves


def trained(messages, what):
    return [m.split(f" {what} ", 1)[1] for m in messages if f"seed 0 {what} " in m]


def test_a_seed_cut_short_goes_on_from_its_record_to_the_same_result(cohort):
    whole, _ = run(cohort)
    assert bench.complete(whole) and list(whole["students"]) == list(bench.STUDENTS)
    partial = saves_until_cut_short(cohort, 3)[-1]  # teachers; ours + correction loop; one more student
    assert not bench.complete(partial) and "correction_rounds" in partial and len(partial["students"]) == 2
    resumed, messages = run(cohort, partial=partial)
    assert without_seconds(resumed) == without_seconds(whole)
    assert trained(messages, "teacher") == ["O2L attention (ours)"]  # retrained for its pseudo-labels, checked
    assert set(trained(messages, "student")) == set(bench.STUDENTS) - set(partial["students"])
    assert not any("correction round" in m for m in messages)


def test_a_teacher_that_does_not_reproduce_the_saved_one_means_the_seed_runs_again_whole(cohort):
    partial = saves_until_cut_short(cohort, 2)[-1]
    partial["teachers"]["O2L attention (ours)"]["lesion_dice"] += 0.01  # another machine's teacher
    resumed, messages = run(cohort, partial=partial)
    assert any("trained again whole" in m for m in messages)
    assert len(trained(messages, "teacher")) == len(bench.TEACHERS) and set(trained(messages, "student")) == set(bench.STUDENTS)
    assert bench.complete(resumed)
