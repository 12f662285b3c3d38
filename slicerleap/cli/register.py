"""`slicerleap register`: deformable registration. Its method options come from the declarations in
slicerleap/registration/methods.py (REGISTRATION.add_cli_options)."""
from __future__ import annotations

from ..errors import SlicerLeapError
from ..registration.methods import REGISTRATION
from ..batch import registration_params
from .common import batch_options, job_options, refuse_batch_options_for_one_file, report_batch, run_task


def cmd_register(args) -> int:
    if args.pairs:
        return _register_pairs(args)
    refuse_batch_options_for_one_file(args)
    missing = [flag for flag, value in (("--fixed", args.fixed), ("--moving", args.moving), ("--out-transform", args.out_transform)) if not value]
    if missing:
        raise SlicerLeapError(f"{', '.join(missing)} missing.", "Give --fixed, --moving and --out-transform for one pair, "
                              "or --pairs pairs.csv --output FOLDER for many.")
    if args.labels_out and not args.moving_labels:
        raise SlicerLeapError("--labels-out needs --moving-labels (a labelmap of the moving image to propagate).",
                              "Add --moving-labels, or drop --labels-out.")
    params = registration_params(args.method, args.model, REGISTRATION.cli_values(args))  # bad values refused before staging
    method = params["method"]
    inputs = {"fixed": args.fixed, "moving": args.moving}
    if args.moving_labels:
        inputs["moving_labels"] = args.moving_labels
    return run_task("register", inputs, params, args.model if method == "network" else None, args.device, args.keep_files,
                {"transform": args.out_transform, "warped": args.warped, "jacobian": args.jacobian, "labels": args.labels_out})


def _register_pairs(args) -> int:
    from ..batch import read_pairs, register_items, run_batch

    given = [flag for flag, value in (("--fixed", args.fixed), ("--moving", args.moving), ("--out-transform", args.out_transform),
                                      ("--warped", args.warped), ("--jacobian", args.jacobian), ("--moving-labels", args.moving_labels),
                                      ("--labels-out", args.labels_out)) if value]
    if given or not args.output:
        raise SlicerLeapError("--pairs takes its volumes from the table and writes into --output"
                              + (f"; {', '.join(given)} would be ignored." if given else ", which is missing."),
                              "Give --pairs pairs.csv --output FOLDER only (the table's moving_labels column propagates labels).")
    params = registration_params(args.method, args.model, REGISTRATION.cli_values(args))
    items = register_items(read_pairs(args.pairs), args.output, params, args.model if params["method"] == "network" else None)
    return report_batch(run_batch(items, args.workers, args.cluster, args.device))


def add_commands(sub) -> None:
    p = sub.add_parser("register", help="deformable registration of a moving volume to a fixed one")
    p.add_argument("--fixed", help="the fixed volume (file or DICOM folder): every output lies on its grid")
    p.add_argument("--moving", help="the moving volume, registered onto the fixed one")
    p.add_argument("--out-transform", help=".h5 (ITK transform, loads in Slicer) or a vector volume .nrrd")
    p.add_argument("--pairs", default=None, help="many pairs instead: a CSV with the header fixed,moving[,moving_labels], one "
                   "pair per row (paths relative to the table); each pair's transform.h5, warped.nrrd (labels.nrrd) go to "
                   "--output/<moving>_to_<fixed>/")
    p.add_argument("--output", default=None, help="with --pairs: the output folder")
    p.add_argument("--warped", default=None, help="write the warped moving volume here")
    p.add_argument("--jacobian", default=None, help="write the Jacobian determinant volume here")
    REGISTRATION.add_method_option(p, default_note="default: network when a model is installed")
    p.add_argument("--model", default=None, help="registration model id (default: the catalog's default registration model)")
    p.add_argument("--moving-labels", default=None, help="labelmap of the moving image to propagate onto the fixed image")
    p.add_argument("--labels-out", default=None, help="write the propagated labelmap here")
    REGISTRATION.add_cli_options(p)
    job_options(p)
    batch_options(p)
    p.set_defaults(func=cmd_register)
