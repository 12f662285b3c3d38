"""Reconstruction's methods and their parameters, declared once (slicerleap/declarations.py): the `reconstruct` task,
the CLI and the Python API read these. The k-space file and the output geometry (--spacing) are the job's inputs."""
from ..declarations import Method, MethodFamily, Parameter
from .masks import MASK_KINDS

ACCELERATION = Parameter("acceleration", float, 4.0, "undersampling factor applied to fully sampled k-space (--mask "
                         "equispaced|random); 1: use every line", minimum=1.0, maximum=32.0)
MASK = Parameter("mask", str, "auto", "auto: the lines the file acquired (its stored mask, else the lines holding data); "
                 "equispaced or random: undersample fully sampled k-space again (retrospective, for comparisons)",
                 choices=MASK_KINDS)
CENTER_FRACTION = Parameter("center_fraction", float, 0.0, "fully sampled centre as a fraction of the lines (0: "
                            "fastMRI's 0.08 at 4x, 0.04 at 8x)", minimum=0.0, maximum=0.5)
SEED = Parameter("seed", int, 0, "random seed of the mask (random masks, the equispaced offset)", minimum=0, panel=False)
ITERATIONS = Parameter("iterations", int, 50, "solver iterations per slice", minimum=1, maximum=1000)


def _lamda(default: float, what: str) -> Parameter:
    return Parameter("lamda", float, default, f"regularisation weight ({what})", minimum=0.0, maximum=10.0)


ZERO_FILLED = Method("zero-filled", "reconstruct", "inverse FFT of the acquired lines, coils combined by root-sum-of-squares")
SENSE = Method("sense", "reconstruct", "SENSE with ESPIRiT coil sensitivities (SigPy), L2-regularised", (
    _lamda(0.01, "L2"), ITERATIONS))
CS = Method("cs", "reconstruct", "compressed sensing: L1-wavelet sparsity with ESPIRiT sensitivities (SigPy)", (
    _lamda(0.001, "L1 on Daubechies-4 wavelets"), ITERATIONS))

VARNET = Method("varnet", "reconstruct", "E2E-VarNet (MONAI): a network from the catalog (--model; default: the catalog's "
                "default reconstruction model), trained with `slicerleap train recon`")

RECONSTRUCTION = MethodFamily("reconstruct", (ZERO_FILLED, SENSE, CS, VARNET), shared=(ACCELERATION, MASK, CENTER_FRACTION, SEED),
                              title="reconstruction")
