"""Super-resolution's methods and their parameters, declared once (slicerleap/declarations.py): the `superres` task,
the CLI, SuperResolutionLib and the SuperResolution panel read these. The target spacing and a second contrast are
the job's geometry and inputs, not method parameters: the task and the Lib check those."""
from ..declarations import Method, MethodFamily, Parameter
from .slice_profile import DEGRADATIONS

MAX_ITERATIONS = 20000


def _iterations(default: int) -> Parameter:
    return Parameter("iterations", int, default, "the budget: SR4ZCT training iterations, dmDIP iterations per slab of 16 "
                     "coronal slices, or TV iterations (more is slower and usually better)", minimum=1, maximum=MAX_ITERATIONS)


TIME_BUDGET = Parameter("time_budget_s", float, 0.0, "stop after this many seconds, keeping the result so far "
                        "(0: no limit)", minimum=0.0, maximum=86400.0, unit="s", flag="--time-budget")
THICKNESS = Parameter("thickness_mm", float, 0.0, "slice thickness when it differs from the slice spacing, e.g. "
                      "overlapping slices (0: the same as the spacing)", minimum=0.0, maximum=50.0, unit="mm")
DEGRADATION = Parameter("degradation", str, "slice-profile", "how the thick slices were made: slice-profile (box "
                        "profile, 2D multi-slice) or kspace (central k-space truncation, 3D MRI)", choices=DEGRADATIONS)
SEED = Parameter("seed", int, 0, "random seed of the network's initialisation and crops", minimum=0, panel=False)

SR4ZCT = Method("sr4zct", "superres", "self-supervised per-scan network (Shi et al., MLMI 2023), trained on this scan's "
                "in-plane slices", (
                    _iterations(400), TIME_BUDGET, THICKNESS,
                    Parameter("network", str, "unet", "SR4ZCT's network: unet (small 2D U-Net, fast on CPU) or msd (the "
                              "paper's MS-D net)", choices=("unet", "msd")),
                    SEED))
DMDIP = Method("dmdip", "superres", "(dual-modal) deep image prior with the measured slices enforced (Bi et al., MLMI "
               "2023)", (
                   _iterations(300), TIME_BUDGET, THICKNESS, DEGRADATION,
                   Parameter("tv_weight", float, 0.5, "weight of dmDIP's total-variation term (0: the paper's objective)",
                             minimum=0.0, maximum=100.0, panel=False),
                   SEED))
TV = Method("tv", "superres", "total-variation reconstruction consistent with the measured slices (classical)", (
    _iterations(200), THICKNESS, DEGRADATION))
BSPLINE = Method("bspline", "superres", "cubic B-spline interpolation")
LINEAR = Method("linear", "superres", "linear interpolation")
SINC = Method("sinc", "superres", "Welch-windowed sinc interpolation")
DIFFERENCE = Parameter("difference_from_cubic", bool, False, "also output the result minus cubic interpolation "
                       "(what the method added)")

SUPERRES = MethodFamily("superres", (SR4ZCT, DMDIP, TV, BSPLINE, LINEAR, SINC), shared=(DIFFERENCE,),
                        aliases=(("cubic", "bspline"),), title="super-resolution")
PER_SCAN_METHODS = tuple(m.name for m in SUPERRES.methods if any(p.name == "iterations" for p in m.parameters))
