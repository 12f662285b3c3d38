"""`slicerleap superres`: thick-slice volumes restored at a finer spacing. Its method options come from the
declarations in slicerleap/enhancement/methods.py (SUPERRES.add_cli_options)."""
from __future__ import annotations

from ..enhancement.methods import SUPERRES
from ..errors import SlicerLeapError
from .common import batch_options, is_volume_folder, job_options, refuse_batch_options_for_one_file, report_batch, run_task


def cmd_superres(args) -> int:
    if isinstance(args.spacing, list) and len(args.spacing) == 1:  # one value for all axes
        args.spacing = args.spacing * 3
    method = SUPERRES.method(args.method).name  # "cubic" is bspline
    if is_volume_folder(args.input):
        if args.input2 or args.output2 or args.difference:
            raise SlicerLeapError("--input2, --output2 and --difference take one volume, not a folder.",
                                  "Run those volumes one by one, or drop the options for the folder.")
        from ..batch import folder_items, run_batch, superres_params

        params = superres_params(method, args.spacing, SUPERRES.cli_values(args))
        return report_batch(run_batch(folder_items("superres", args.input, args.output, params, None, "volume"),
                                      args.workers, args.cluster, args.device))
    refuse_batch_options_for_one_file(args)
    if args.input2 and method != "dmdip":
        raise SlicerLeapError("--input2 (a second contrast) is used by --method dmdip only.", "Add --method dmdip, or drop --input2.")
    if args.output2 and not args.input2:
        raise SlicerLeapError("--output2 needs --input2 (the second contrast to restore).", "Add --input2, or drop --output2.")
    given = {**SUPERRES.cli_values(args), "difference_from_cubic": bool(args.difference)}
    params = {"method": method, "spacing": args.spacing,
              **SUPERRES.resolve(method, given)}  # bad values refused before the images are staged
    inputs = {"image": args.input, **({"image2": args.input2} if args.input2 else {})}
    return run_task("superres", inputs, params, None, args.device, args.keep_files,
                    {"volume": args.output, "difference": args.difference, "volume2": args.output2})


def add_commands(sub) -> None:
    p = sub.add_parser("superres", help="restore thick-slice volumes at a finer spacing (SR4ZCT, dmDIP or interpolation)")
    p.add_argument("--input", required=True, help="the thick-slice volume (file or DICOM folder), or a folder of volume files")
    p.add_argument("--output", required=True, help="the restored volume (.nrrd, .nii.gz, .mha), or a folder; never the input")
    SUPERRES.add_method_option(p, default="sr4zct")
    p.add_argument("--input2", default=None, help="dmdip: a second contrast of the same subject on the same grid (e.g. T2w)")
    p.add_argument("--output2", default=None, help="dmdip: where to write the restored second contrast")
    p.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="mm: one value (isotropic) or three (default: isotropic at the in-plane pixel size)")
    SUPERRES.add_cli_options(p, skip=("difference_from_cubic",))
    p.add_argument("--difference", default=None, help="also write (method - cubic interpolation) here")
    job_options(p)
    batch_options(p)
    p.set_defaults(func=cmd_superres)
