"""Multi-coil k-space simulated from real anatomy (no raw k-space ships offline): the magnitude image times a smooth
synthetic phase, times SigPy's birdcage coil sensitivities, Fourier-transformed (centred, orthonormal), plus complex
Gaussian noise whose image-domain SD is the object's mean intensity / `snr`. Test data and benchmarks only: real
scanner data has more (field inhomogeneity, motion, gradient errors) than this simulates."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def smooth_phase(shape: tuple[int, int], rng, max_radians: float = np.pi) -> np.ndarray:
    field = gaussian_filter(rng.normal(size=shape), sigma=min(shape) / 6, mode="wrap")
    return (field / (np.abs(field).max() + 1e-12) * max_radians).astype(np.float32)


def coil_maps(n_coils: int, shape: tuple[int, int]) -> np.ndarray:
    """(coils, height, width) birdcage sensitivities, normalised so that their root-sum-of-squares is 1 everywhere:
    the fully sampled RSS image is then the anatomy itself (plus noise), the reference every method is scored on."""
    import sigpy.mri as mr

    maps = mr.birdcage_maps((n_coils, *shape), r=1.2, nzz=n_coils).astype(np.complex64)
    return maps / np.sqrt((np.abs(maps) ** 2).sum(0))


def simulate_kspace(slices: np.ndarray, n_coils: int = 8, snr: float = 40.0, seed: int = 0) -> np.ndarray:
    """(slices, coils, height, width) complex64 k-space of real-valued images (slices, height, width)."""
    import sigpy as sp

    rng = np.random.default_rng(seed)
    slices = np.asarray(slices, dtype=np.float32)
    maps = coil_maps(n_coils, slices.shape[1:])
    level = slices[slices > 0.1 * slices.max()].mean() if slices.max() > 0 else 1.0
    out = np.empty((len(slices), n_coils, *slices.shape[1:]), dtype=np.complex64)
    for k, image in enumerate(slices):
        complex_image = image * np.exp(1j * smooth_phase(image.shape, rng))
        kspace = sp.fft(maps * complex_image, axes=(-2, -1), norm="ortho", center=True)
        noise = (rng.normal(size=kspace.shape) + 1j * rng.normal(size=kspace.shape)) * level / snr / np.sqrt(2)
        out[k] = kspace + noise
    return out


def ismrmrd_header(recon_size: tuple[int, int], spacing_mm: tuple[float, float, float]) -> str:
    """A minimal ISMRMRD header with the reconstruction space (x: height/readout, y: width/phase, z: slice)."""
    height, width = recon_size
    fov = (height * spacing_mm[1], width * spacing_mm[0], spacing_mm[2])
    size = "".join(f"<{a}>{n}</{a}>" for a, n in zip("xyz", (height, width, 1)))
    mm = "".join(f"<{a}>{v:.6g}</{a}>" for a, v in zip("xyz", fov))
    space = f"<matrixSize>{size}</matrixSize><fieldOfView_mm>{mm}</fieldOfView_mm>"
    return ('<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
            f"<encodedSpace>{space}</encodedSpace><reconSpace>{space}</reconSpace></encoding></ismrmrdHeader>")


def write_fastmri_h5(path, kspace: np.ndarray, spacing_mm: tuple[float, float, float], mask: np.ndarray | None = None) -> None:
    """k-space (slices, coils, height, width) in the fastMRI layout, with its header (and mask)."""
    import h5py

    with h5py.File(path, "w") as handle:
        handle["kspace"] = kspace.astype(np.complex64)
        handle["ismrmrd_header"] = ismrmrd_header(kspace.shape[-2:], spacing_mm)
        if mask is not None:
            handle["mask"] = mask.astype(bool)
