"""The baselines users know, from SigPy (do not hand-write what it does): zero-filled inverse FFT with root-sum-of-
squares coil combination, SENSE (ESPIRiT coil sensitivities from the fully sampled centre, L2-regularised), and
compressed sensing (L1-wavelet). One slice at a time: k-space (coils, height, width) centred, orthonormal FFT."""
from __future__ import annotations

import numpy as np


def coil_images(kspace: np.ndarray) -> np.ndarray:
    import sigpy as sp

    return sp.ifft(kspace, axes=(-2, -1), norm="ortho", center=True)


def zero_filled(kspace: np.ndarray) -> np.ndarray:
    """Magnitude: root-sum-of-squares over coils of the inverse FFT (unsampled lines are zeros)."""
    return np.sqrt((np.abs(coil_images(kspace)) ** 2).sum(0)).astype(np.float32)


def coil_sensitivities(kspace: np.ndarray, calibration_lines: int) -> np.ndarray:
    """ESPIRiT maps (coils, height, width) from the fully sampled centre; ones for a single coil. The kernel is at most
    half the calibration width (SigPy's default 6 needs 12+ lines), and with fewer than 16 lines the eigenvalue crop is
    0.8 instead of 0.95: with SigPy's defaults 8 lines (8x on a 200-line matrix) gave all-zero maps."""
    import sigpy.mri as mr

    from ..errors import BadInputError

    if kspace.shape[0] == 1:
        return np.ones_like(kspace)
    if calibration_lines < 6:
        raise BadInputError(f"Only {calibration_lines} fully sampled centre lines: too few to estimate coil sensitivities.",
                            "Use --method zero-filled, a larger --center-fraction, or a lower --acceleration.")
    return mr.app.EspiritCalib(kspace, calib_width=calibration_lines, kernel_width=min(6, calibration_lines // 2),
                               crop=0.95 if calibration_lines >= 16 else 0.8, show_pbar=False).run()


def sense(kspace: np.ndarray, maps: np.ndarray, weights: np.ndarray, lamda: float, iterations: int) -> np.ndarray:
    import sigpy.mri as mr

    image = mr.app.SenseRecon(kspace, maps, weights=weights, lamda=lamda, max_iter=iterations, show_pbar=False).run()
    return np.abs(image).astype(np.float32)


def l1_wavelet(kspace: np.ndarray, maps: np.ndarray, weights: np.ndarray, lamda: float, iterations: int) -> np.ndarray:
    import sigpy.mri as mr

    image = mr.app.L1WaveletRecon(kspace, maps, weights=weights, lamda=lamda, max_iter=iterations, show_pbar=False).run()
    return np.abs(image).astype(np.float32)
