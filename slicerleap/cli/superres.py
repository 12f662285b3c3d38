"""`slicerleap superres`: thick-slice volumes restored at a finer spacing."""
from __future__ import annotations

from ..errors import SlicerLeapError
from .common import job_options, run_task


def cmd_superres(args) -> int:
    if isinstance(args.spacing, list) and len(args.spacing) == 1:  # one value for all axes
        args.spacing = args.spacing * 3
    if args.input2 and args.method != "dmdip":
        raise SlicerLeapError("--input2 (a second contrast) is used by --method dmdip only.", "Add --method dmdip, or drop --input2.")
    if args.output2 and not args.input2:
        raise SlicerLeapError("--output2 needs --input2 (the second contrast to restore).", "Add --input2, or drop --output2.")
    params = {"method": args.method, "spacing": args.spacing, "iterations": args.iterations, "time_budget_s": args.time_budget,
              "thickness_mm": args.thickness, "difference_from_cubic": bool(args.difference)}
    if args.method in ("dmdip", "tv"):
        params["degradation"] = args.degradation
    if args.method == "dmdip" and args.tv_weight is not None:
        params["tv_weight"] = args.tv_weight
    inputs = {"image": args.input, **({"image2": args.input2} if args.input2 else {})}
    return run_task("superres", inputs, params, None, args.device, args.keep_files,
                {"volume": args.output, "difference": args.difference, "volume2": args.output2})


def add_commands(sub) -> None:
    p = sub.add_parser("superres", help="restore thick-slice volumes at a finer spacing (SR4ZCT, dmDIP or interpolation)")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--method", default="sr4zct", choices=["sr4zct", "dmdip", "tv", "cubic", "bspline", "linear", "sinc"],
                   help="sr4zct: self-supervised per-scan network (default); dmdip: (dual-modal) deep image prior; "
                        "tv: total-variation reconstruction consistent with the slices (classical, seconds); "
                        "cubic/bspline, linear, sinc: interpolation")
    p.add_argument("--input2", default=None, help="dmdip: a second contrast of the same subject on the same grid (e.g. T2w)")
    p.add_argument("--output2", default=None, help="dmdip: where to write the restored second contrast")
    p.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="mm: one value (isotropic) or three (default: isotropic at the in-plane pixel size)")
    p.add_argument("--iterations", type=int, default=400, help="SR4ZCT training iterations / dmDIP iterations per slab (budget)")
    p.add_argument("--time-budget", type=float, default=None, help="stop the optimisation after this many seconds")
    p.add_argument("--thickness", type=float, default=None, help="slice thickness in mm if it differs from the spacing (overlap)")
    p.add_argument("--degradation", default="slice-profile", choices=["slice-profile", "kspace"],
                   help="dmdip, tv: how the thick slices were made: box slice profile (2D multi-slice, default) or "
                        "central k-space (3D acquisition, the dmDIP paper's model)")
    p.add_argument("--tv-weight", type=float, default=None,
                   help="dmdip: weight of the total-variation term (default 0.5; 0: the paper's objective)")
    p.add_argument("--difference", default=None, help="also write (method - cubic interpolation) here")
    job_options(p)
    p.set_defaults(func=cmd_superres)
