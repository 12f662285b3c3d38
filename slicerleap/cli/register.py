"""`slicerleap register`: deformable registration. Its method options come from the declarations in
slicerleap/registration/methods.py (REGISTRATION.add_cli_options)."""
from __future__ import annotations

from ..errors import SlicerLeapError
from ..registration.methods import REGISTRATION
from .common import job_options, run_task


def cmd_register(args) -> int:
    if args.labels_out and not args.moving_labels:
        raise SlicerLeapError("--labels-out needs --moving-labels (a labelmap of the moving image to propagate).",
                              "Add --moving-labels, or drop --labels-out.")
    method = args.method or ("optimisation" if args.model is None and not _has_registration_model() else "network")
    params = {"method": method, **REGISTRATION.cli_values(args)}
    params.update(REGISTRATION.resolve(method, params))  # bad values refused before the images are staged
    inputs = {"fixed": args.fixed, "moving": args.moving}
    if args.moving_labels:
        inputs["moving_labels"] = args.moving_labels
    return run_task("register", inputs, params, args.model if method == "network" else None, args.device, args.keep_files,
                {"transform": args.out_transform, "warped": args.warped, "jacobian": args.jacobian, "labels": args.labels_out})


def _has_registration_model() -> bool:
    from ..models import get_catalog

    return any(c["task"] == "registration" for c in get_catalog().cards())


def add_commands(sub) -> None:
    p = sub.add_parser("register", help="deformable registration of a moving volume to a fixed one")
    p.add_argument("--fixed", required=True, help="the fixed volume (file or DICOM folder): every output lies on its grid")
    p.add_argument("--moving", required=True, help="the moving volume, registered onto the fixed one")
    p.add_argument("--out-transform", required=True, help=".h5 (ITK transform, loads in Slicer) or a vector volume .nrrd")
    p.add_argument("--warped", default=None, help="write the warped moving volume here")
    p.add_argument("--jacobian", default=None, help="write the Jacobian determinant volume here")
    REGISTRATION.add_method_option(p, default_note="default: network when a model is installed")
    p.add_argument("--model", default=None, help="registration model id (default: the catalog's default registration model)")
    p.add_argument("--moving-labels", default=None, help="labelmap of the moving image to propagate onto the fixed image")
    p.add_argument("--labels-out", default=None, help="write the propagated labelmap here")
    REGISTRATION.add_cli_options(p)
    job_options(p)
    p.set_defaults(func=cmd_register)
