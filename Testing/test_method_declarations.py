"""Methods declared once (slicerleap/declarations.py): parameters checked and defaulted from the declaration, the
CLI's options built from it, and each Slicer panel's parameter node held against it. The panel is read from its
source (ast), as the static module tests do: `parameterNodeWrapper` does not exist outside Slicer."""
import argparse
import ast
from pathlib import Path

import pytest

from slicerleap.declarations import Parameter
from slicerleap.enhancement.methods import SUPERRES
from slicerleap.errors import BadInputError
from slicerleap.registration.methods import REGISTRATION

ROOT = Path(__file__).resolve().parents[1]
PANELS = {REGISTRATION: ROOT / "RegistrationDL" / "RegistrationDL.py",
          SUPERRES: ROOT / "SuperResolution" / "SuperResolution.py"}


def parameter_node_fields(source: str) -> dict:
    """{field: (default, (low, high) or choices)} of the @parameterNodeWrapper class in a module's source."""
    tree = ast.parse(source)
    node_class = next(n for n in tree.body if isinstance(n, ast.ClassDef)
                      and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in n.decorator_list))
    fields = {}
    for item in node_class.body:
        if isinstance(item, ast.AnnAssign) and item.value is not None:
            default = ast.literal_eval(item.value)
            bound = None
            for call in ast.walk(item.annotation):
                if isinstance(call, ast.Call) and getattr(call.func, "id", "") in ("WithinRange", "Choice"):
                    bound = tuple(ast.literal_eval(a) for a in call.args)
            fields[item.target.id] = (default, bound)
    return fields


def panel_mismatches(family, source: str) -> list[str]:
    """What the panel's parameter node says differently from the declaration: a missing field, a default (of the
    panel's default method, where methods declare their own) or a range. Expert knobs (panel=False) are not shown."""
    fields, bad = parameter_node_fields(source), []
    panel_method = fields.get("method", (None, None))[0]
    for p in family.parameters():
        if not p.panel:
            continue
        name = p.panel_name
        if name not in fields:
            bad.append(f"the panel has no parameter '{name}' for {p.name}")
            continue
        default, bound = fields[name]
        declared_default = family.defaults(p.name).get(panel_method, p.default)
        if default != declared_default:
            bad.append(f"{name}: panel default {default!r}, declared {declared_default!r}")
        if p.minimum is not None and bound != (p.minimum, p.maximum):
            bad.append(f"{name}: panel range {bound}, declared {(p.minimum, p.maximum)}")
        if p.choices and bound != (list(p.choices),):
            bad.append(f"{name}: panel choices {bound}, declared {p.choices}")
    if fields.get("method", (None, None))[1] != (list(family.names),):
        bad.append(f"method: panel choices {fields.get('method')}, declared {family.names}")
    return bad


@pytest.mark.parametrize("family", list(PANELS), ids=lambda f: f.task)
def test_the_panel_matches_the_declaration(family):
    assert panel_mismatches(family, PANELS[family].read_text(encoding="utf-8")) == []


def test_the_panel_check_fails_on_a_broken_copy():
    source = PANELS[REGISTRATION].read_text(encoding="utf-8")
    broken = source.replace("refineIterations: Annotated[int, WithinRange(0, 1000)] = 70",
                            "refineIterations: Annotated[int, WithinRange(0, 999)] = 71")
    assert broken != source
    assert len(panel_mismatches(REGISTRATION, broken)) == 2


def test_parameters_are_checked_and_defaulted_from_the_declaration():
    assert REGISTRATION.resolve("network", {}) == {"affine": True, "nio_iterations": 0, "refine_iterations": 70}
    assert REGISTRATION.resolve("optimisation", {"iterations": "12", "affine": False})["iterations"] == 12
    with pytest.raises(BadInputError, match=r"refine_iterations \(--refine-iters\) must be at least 0 and at most 1000 \(got -1\).*Fix"):
        REGISTRATION.resolve("network", {"refine_iterations": -1})
    with pytest.raises(BadInputError, match=r"at least 0.5 mm and at most 10 mm"):
        REGISTRATION.resolve("optimisation", {"working_spacing_mm": 0})
    with pytest.raises(BadInputError, match="must be int"):
        REGISTRATION.resolve("optimisation", {"iterations": "many"})
    with pytest.raises(BadInputError, match="Unknown registration method 'demons'"):
        REGISTRATION.resolve("demons", {})
    assert Parameter("mode", str, "a", "h", choices=("a", "b")).check("b") == "b"
    with pytest.raises(BadInputError, match="not one of: a, b"):
        Parameter("mode", str, "a", "h", choices=("a", "b")).check("c")


def test_the_cli_options_come_from_the_declaration():
    parser = argparse.ArgumentParser()
    REGISTRATION.add_cli_options(parser)
    given = parser.parse_args(["--refine-iters", "5", "--no-affine", "--working-spacing", "2.5"])
    assert given.refine_iterations == 5 and given.affine is False and given.working_spacing_mm == 2.5
    assert parser.parse_args([]).refine_iterations is None  # not given: the task applies the declared default
    options = {a.dest: a.help for a in parser._actions if a.dest != "help"}
    assert set(options) == {p.name for p in REGISTRATION.parameters()}
    assert "default 70" in options["refine_iterations"] and "method network" in options["refine_iterations"]


def test_methods_declare_their_own_defaults_and_aliases():
    """Super-resolution's iterations: one option, one panel field, a default per method; "cubic" is bspline."""
    assert SUPERRES.resolve("dmdip", {})["iterations"] == 300 and SUPERRES.resolve("sr4zct", {})["iterations"] == 400
    assert SUPERRES.resolve("tv", {})["iterations"] == 200 and SUPERRES.resolve("linear", {}) == {"difference_from_cubic": False}
    assert SUPERRES.method("cubic").name == "bspline"
    with pytest.raises(BadInputError, match="Unknown super-resolution method 'lanczos'"):
        SUPERRES.method("lanczos")
    with pytest.raises(BadInputError, match=r"time_budget_s \(--time-budget\) must be at least 0 s"):
        SUPERRES.resolve("sr4zct", {"time_budget_s": -1})
    parser = argparse.ArgumentParser()
    SUPERRES.add_cli_options(parser, skip=("difference_from_cubic",))
    options = {a.dest: a.help for a in parser._actions if a.dest != "help"}
    assert "default 400 (sr4zct), 300 (dmdip), 200 (tv)" in options["iterations"] and "difference_from_cubic" not in options
    assert parser.parse_args(["--thickness", "1.5", "--time-budget", "60"]).thickness_mm == 1.5


def test_the_superres_panel_check_fails_on_a_broken_copy():
    source = PANELS[SUPERRES].read_text(encoding="utf-8")
    broken = source.replace('network: Annotated[str, Choice(["unet", "msd"])] = "unet"',
                            'network: Annotated[str, Choice(["unet"])] = "unet"').replace("thickness:", "sliceThickness:")
    assert broken != source
    assert len(panel_mismatches(SUPERRES, broken)) == 2
