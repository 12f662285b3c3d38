"""Task "reconstruct": undersampled Cartesian k-space (reconstruction/kspace.py) -> a magnitude volume.

Methods and their parameters: slicerleap/reconstruction/methods.py. Job parameters besides those: "method",
"spacing" (mm, x y z: used when the file says nothing), "output_name". Input "kspace": the file as the user gave it
(copied into the job folder, with the .json beside a .npy)."""
from __future__ import annotations

import numpy as np

from ..errors import BadInputError
from ..reconstruction import classical
from ..reconstruction.kspace import read_kspace
from ..reconstruction.masks import acquired_lines, calibration_width, undersampling_mask
from ..reconstruction.methods import RECONSTRUCTION
from ..volume import Volume


def sampling(kspace, params: dict) -> tuple[np.ndarray, str]:
    """The lines used, and how they were chosen (said in the output)."""
    width = kspace.data.shape[-1]
    if params["mask"] == "auto":
        if kspace.mask is not None:
            return kspace.mask, "the file's mask"
        lines = acquired_lines(kspace.data)
        return lines, "the lines holding data" if not lines.all() else "every line (fully sampled)"
    if kspace.mask is not None and not kspace.mask.all():
        raise BadInputError(f"The file is already undersampled ({int(kspace.mask.sum())} of {width} lines); it cannot be "
                            f"undersampled again as if fully sampled.", "Use --mask auto for this file.")
    mask = undersampling_mask(width, params["acceleration"], params["mask"], params["center_fraction"], params["seed"])
    return mask, f"{params['mask']} {params['acceleration']:g}x (retrospective, seed {params['seed']})"


def centre_crop(image: np.ndarray, size) -> np.ndarray:
    if size is None:
        return image
    h, w = image.shape
    ch, cw = min(size[0], h), min(size[1], w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top:top + ch, left:left + cw]


def reconstruct_slice(kspace_slice: np.ndarray, mask: np.ndarray, method: str, params: dict, net=None, device="cpu") -> np.ndarray:
    sampled = kspace_slice * mask  # lines outside the mask count as not acquired, whatever the file holds there
    if method == "varnet":
        from ..reconstruction.varnet import varnet_reconstruct

        return varnet_reconstruct(net, sampled, mask, device)
    if method == "zero-filled":
        return classical.zero_filled(sampled)
    maps = classical.coil_sensitivities(sampled, calibration_width(mask))
    weights = np.broadcast_to(mask.astype(np.float32), sampled.shape[-2:])[None]
    solve = classical.sense if method == "sense" else classical.l1_wavelet
    return solve(sampled, maps, weights, params["lamda"], params["iterations"])


def run(ctx) -> dict:
    p = ctx.params
    method = RECONSTRUCTION.method(p.get("method", "zero-filled")).name
    params = RECONSTRUCTION.resolve(method, p)
    kspace = read_kspace(ctx.input_path("kspace"))
    if method != "zero-filled" and not kspace.multicoil:
        ctx.report(0.01, "checking", f"single-coil k-space: {method} runs with a uniform coil sensitivity")
    mask, how = sampling(kspace, params)
    net = None
    if method == "varnet":
        from ..models import get_catalog
        from ..models.networks import load_model

        card = get_catalog().resolve(ctx.spec.model, "reconstruction", "reconstruct --method varnet")
        ctx.report(0.03, "loading model", f"{card['id']} on {ctx.device}")
        net = load_model(card, ctx.device)
    n = len(kspace.data)
    slices = []
    for k in range(n):
        slices.append(centre_crop(reconstruct_slice(kspace.data[k], mask, method, params, net, ctx.device), kspace.recon_size))
        ctx.report(0.05 + 0.9 * (k + 1) / n, "reconstructing", f"slice {k + 1}/{n} ({method})")
    image = np.stack(slices).astype(np.float32)  # (slices, height, width) = volume K, J, I
    spacing, source = kspace.spacing_mm, kspace.geometry_source
    if spacing is None:
        spacing = tuple(p.get("spacing") or (1.0, 1.0, 1.0))
        source = "--spacing" if p.get("spacing") else "none in the file: 1 mm isotropic at the origin (give --spacing)"
    volume = Volume(image, kspace.ijk_to_ras, {}) if kspace.ijk_to_ras is not None else Volume.from_geometry(image, spacing)
    volume.metadata.update(name=p.get("output_name") or f"reconstruction ({method})", modality="MR")
    acceleration = mask.size / max(int(mask.sum()), 1)
    ctx.report(0.97, "writing", f"geometry from {source}; {int(mask.sum())} of {mask.size} lines ({acceleration:.2f}x, {how})")
    return {"outputs": {"volume": {"kind": "volume", "file": ctx.write_output(volume, "reconstruction.nrrd"),
                                   "name": volume.metadata["name"]}},
            "metrics": {"method": method, "lines": int(mask.sum()), "width": int(mask.size), "acceleration": round(acceleration, 3),
                        "sampling": how, "geometry": source, "coils": int(kspace.data.shape[1])}}
