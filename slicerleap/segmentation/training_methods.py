"""Segmentation training's methods and their user-facing parameters, declared once (slicerleap/declarations.py): the
train-sks, train-teacher / train-student and train-mptpn tasks, `slicerleap train sks|teacher|student|mptpn`,
SKSSegmentationLib and the SKSSegmentation panel's trainingIterations read these. The trainers' other settings (crop,
batch size, widths, ...) stay expert fields of their config dataclasses; a job's "config" may give them too."""
from __future__ import annotations

from dataclasses import fields

from ..declarations import Method, MethodFamily, Parameter
from ..errors import BadInputError
from ..mixed_precision import PRECISION_HELP, PRECISIONS

MAX_ITERATIONS = 100000
CASE_SPLIT = ("validation_cases",)  # how the CLI splits its cases: not a trainer setting, never in a job's config


def _iterations(default: int, what: str) -> Parameter:
    return Parameter("iterations", int, default, what, minimum=1, maximum=MAX_ITERATIONS)


PRECISION = Parameter("precision", str, "fp32", PRECISION_HELP, choices=PRECISIONS, panel=False)
SEED = Parameter("seed", int, 0, "random seed of the initialisation, sampling and augmentation", minimum=0, panel=False)
VALIDATION = Parameter("validation_cases", int, 0, "cases with masks held out to pick the best weights", minimum=0,
                       panel=False)
COARSE = Parameter("coarse_iterations", int, 0, "stage 1 (slice labels) iterations; 0: three quarters of the iterations",
                   minimum=0, maximum=MAX_ITERATIONS, panel=False)
# None, not 0, is "derived": 0 skips stage 1 (the paper's "w/o Stage-1 weights")
PRETRAIN = Parameter("pretrain_iterations", int, None, "stage 1 (SimSiam on image-text pairs) iterations (default: half of "
                     "the iterations; 0 skips it)", minimum=0, maximum=MAX_ITERATIONS, panel=False)

_SLICE = _iterations(400, "stage 2 (pixel labels) iterations")
SKS = Method("sks", "train-sks", "dual Swin V2 encoder, stage 1 on slice labels, stage 2 on pixel labels",
             (_SLICE, COARSE, VALIDATION, PRECISION, SEED))
UNET = Method("unet", "train-sks", "2D U-Net baseline (2.5D input), pixel labels only", (_SLICE, VALIDATION, PRECISION, SEED))
SKS_TRAINING = MethodFamily("train-sks", (SKS, UNET), title="SKS training")

_BOX = _iterations(400, "training iterations")
TEACHER = Method("teacher", "train-teacher", "teacher annotator: U-Net with organ-to-lesion box attention",
                 (_BOX, VALIDATION, PRECISION, SEED))
STUDENT = Method("student", "train-student", "student segmentor: masks + the teacher's pseudo-labels",
                 (_BOX, VALIDATION, PRECISION, SEED))
TEACHER_STUDENT = MethodFamily("teacher-student", (TEACHER, STUDENT), title="teacher-student training")

_TEXT = _iterations(600, "stage 2 (segmentation) iterations")
MPTPN = Method("mptpn", "train-mptpn", "text-prompted 2D segmentation network", (_TEXT, PRETRAIN, PRECISION, SEED))
MPTPN_UNET = Method("unet", "train-mptpn", "image-only 2D U-Net (prompts ignored)", (_TEXT, PRECISION, SEED))
MPTPN_TRAINING = MethodFamily("train-mptpn", (MPTPN, MPTPN_UNET), title="text-prompted training")


def resolve_training(family: MethodFamily, method: str, given: dict) -> dict:
    """`family.resolve`, with the stage-1 budgets left at their default derived from the iterations (the CLI, the
    Lib and the task all come here, so a default run trains the same)."""
    p = family.resolve(method, given)
    if p.get("coarse_iterations") == 0:
        p["coarse_iterations"] = max(1, 3 * p["iterations"] // 4)
    if "pretrain_iterations" in p and p["pretrain_iterations"] is None:
        p["pretrain_iterations"] = max(1, p["iterations"] // 2)
    return p


def training_config(family: MethodFamily, config: dict | None, dataclass, method: str | None = None) -> dict:
    """The task's config for `dataclass`: the method (`method`, else config "model") known, its declared parameters
    checked and defaulted, the dataclass's other (expert) fields passed on; any other key refused, naming it."""
    config = dict(config or {})
    name = family.method(method or config.get("model", family.names[0])).name
    declared = {p.name for p in family.parameters()} - set(CASE_SPLIT)
    expert = {f.name for f in fields(dataclass)} - declared
    unknown = set(config) - declared - expert
    if unknown:
        raise BadInputError(f"Unknown {family.title} setting(s): {', '.join(sorted(unknown))}.",
                            f"Use: {', '.join(sorted(declared | expert))}.")
    settings = {k: v for k, v in resolve_training(family, name, config).items() if k not in CASE_SPLIT}
    return {**{k: v for k, v in config.items() if k in expert}, **settings, **({"model": name} if "model" in expert else {})}
