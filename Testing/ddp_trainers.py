"""Run by Testing/test_distributed_training.py under torchrun (and alone): a few steps of the SKS, teacher,
registration and MPTPN trainers; every process writes the trained weights' checksums and the histories it saw."""
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from phantoms import blob_case, organ_lesion_phantom  # noqa: E402
from slicerleap import Volume, distributed  # noqa: E402
from slicerleap.registration.training import RegistrationTrainingConfig, tm_dca_architecture, train_registration  # noqa: E402
from slicerleap.registration.training_pairs import PairSampler, PairSamplerConfig  # noqa: E402
from slicerleap.segmentation.boxes import boxes_from_labels  # noqa: E402
from slicerleap.segmentation.mptpn.prompted_slices import prompted_slices  # noqa: E402
from slicerleap.segmentation.mptpn.trainer import MPTPNTrainingConfig, train_mptpn  # noqa: E402
from slicerleap.segmentation.sks.trainer import train_slice_model  # noqa: E402
from slicerleap.segmentation.slice_data import prepare_case, slice_input_spec  # noqa: E402
from slicerleap.segmentation.slice_training import SliceTrainingConfig  # noqa: E402
from slicerleap.segmentation.teacher_student.training import TeacherStudentConfig, prepare_box_case, train_box_unet  # noqa: E402

SPEC = {"spacing_mm": [1.5, 1.5, None], "slice_axis": "axial", "slice_context": 1,
        "normalisation": {"kind": "percentile", "lower": 0.5, "upper": 99.5}}


def checksum(net) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(net.state_dict().items()):
        digest.update(name.encode() + value.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()


def main(out: Path) -> None:
    device = torch.device("cpu")
    distributed.start(device)
    report = {}
    pixel = [prepare_case(*blob_case(s)[:1], SPEC, blob_case(s)[1]) for s in range(2)]
    weak = [prepare_case(blob_case(s)[0], SPEC, slice_labels=(blob_case(s)[1].array.reshape(16, -1).max(1) > 0).astype(int)) for s in range(2, 4)]
    config = SliceTrainingConfig(sks=dict(embed_dim=8, depths=(1, 1, 1), num_heads=(1, 1, 2), window=4), crop=32, batch_size=4,
                                 coarse_iterations=4, iterations=6, iterations_per_epoch=3, learning_rate=3e-3)
    net, history, _ = train_slice_model(pixel, weak, pixel, config, device)
    report["sks"] = {"weights": checksum(net), "history": history}

    cases = []
    for seed in range(3):
        image, labels = organ_lesion_phantom(seed)
        image_v, labels_v = Volume.from_geometry(image.astype(np.float32), (1.5, 1.5, 2.0)), Volume.from_geometry(labels, (1.5, 1.5, 2.0))
        cases.append(prepare_box_case(image_v, slice_input_spec(1.5), boxes_from_labels(labels_v), labels_v))
    teacher = TeacherStudentConfig(features=(8, 16, 32, 64, 128), crop=32, batch_size=4, iterations=4, iterations_per_epoch=2)
    net, history, _ = train_box_unet("teacher", cases[:2], cases[2:], teacher, device)
    report["teacher"] = {"weights": checksum(net), "history": history}

    sampler = PairSampler([], PairSamplerConfig(shape=(24, 24, 24), max_displacement_voxels=2.0, synthetic_labels=3), seed=5)
    validation = [PairSampler([], PairSamplerConfig(shape=(24, 24, 24), max_displacement_voxels=2.0, synthetic_labels=3), seed=s).sample()
                  for s in (8, 9)]
    training = RegistrationTrainingConfig(architecture=tm_dca_architecture(embed_dim=8, depths=[1, 1], heads=[2, 4]), iterations=4,
                                          learning_rate=1e-3, validate_every=2)
    net, history = train_registration(sampler, validation, training, device, n_classes=4)
    report["registration"] = {"weights": checksum(net), "history": history}
    slices = prompted_slices(prepare_case(*blob_case(3)[:1], slice_input_spec(1.5, context=0), blob_case(3)[1]), 32, empty_share=0.5)
    mptpn = MPTPNTrainingConfig(img_size=32, net={"channels": 4, "patch": 8, "heads": 1}, iterations=4, pretrain_iterations=2,
                                batch_size=4, learning_rate=3e-3)
    net, history, _ = train_mptpn(slices, mptpn, device)
    report["mptpn"] = {"weights": checksum(net), "history": history}
    (out / f"rank{distributed.rank()}_of_{distributed.world_size()}.json").write_text(json.dumps(report, default=float))
    distributed.stop()


if __name__ == "__main__":
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(Path(sys.argv[1]))
