"""The (image, labelmap) pairs a training task reads: checked one by one (scalar image, non-empty labels) with progress,
and measured for the model's domain as they are read."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import BadInputError
from ..io import read_volume
from ..models.domain import measure_training_case
from ..transforms import check_scalar_volume
from ..volume import Volume


def labelled_cases(ctx, label_specs: list[dict], measured: list[dict], working_spacing=None) -> Iterator[tuple[Volume, Volume]]:
    """Each training pair of the job's "images" and "labels" inputs; appends each case's measures to `measured`."""
    images, labels = ctx.input_paths("images"), ctx.input_paths("labels")
    if not images or len(images) != len(labels):
        raise BadInputError(f"Training needs pairs of images and labels; got {len(images)} images and {len(labels)} labelmaps.",
                            "Give one labelmap per training volume, named like it.")
    for n, (image_path, label_path) in enumerate(zip(images, labels)):
        image, label = read_volume(image_path), read_volume(label_path)
        check_scalar_volume(image, f"training image {n + 1}", working_spacing=working_spacing)
        if not np.any(label.array):
            raise BadInputError(f"Training labelmap {n + 1} ('{label.metadata.get('name')}') is empty.",
                                "Paint at least one structure, or leave that case out.")
        ctx.report(0.02 * (n + 1) / len(images), "preparing", f"case {n + 1}/{len(images)}")
        measured.append(measure_training_case(image, label.array, label_specs))
        yield image, label
