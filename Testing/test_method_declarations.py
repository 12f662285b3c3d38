"""Methods declared once (slicerleap/declarations.py): parameters checked and defaulted from the declaration, the
CLI's options built from it, and each Slicer panel's parameter node held against it. The panel is read from its
source (ast), as the static module tests do: `parameterNodeWrapper` does not exist outside Slicer."""
import argparse
import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from slicerleap.declarations import Parameter
from slicerleap.enhancement.methods import SUPERRES
from slicerleap.errors import BadInputError
from slicerleap.registration.methods import REGISTRATION
from slicerleap.segmentation.training_methods import (MPTPN_TRAINING, SKS_TRAINING, TEACHER_STUDENT, resolve_training,
                                                      training_config)

ROOT = Path(__file__).resolve().parents[1]
SKS_PANEL = ROOT / "SKSSegmentation" / "SKSSegmentation.py"
PANELS = {REGISTRATION: ROOT / "RegistrationDL" / "RegistrationDL.py",
          SUPERRES: ROOT / "SuperResolution" / "SuperResolution.py",
          SKS_TRAINING: SKS_PANEL, TEACHER_STUDENT: SKS_PANEL}
# where a panel names a declared parameter otherwise: {name: panel field}; "method": the selector's field (None: the
# panel's buttons pick the method, so every method's default must be the panel's)
PANEL_SPELLING = {SKS_TRAINING: {"method": "modelType", "iterations": "trainingIterations"},
                  TEACHER_STUDENT: {"method": None, "iterations": "trainingIterations"}}


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
    spelling = PANEL_SPELLING.get(family, {})
    selector = spelling.get("method", "method")
    panel_method = fields.get(selector, (None, None))[0]
    for p in family.parameters():
        if not p.panel:
            continue
        name = spelling.get(p.name, p.panel_name)
        if name not in fields:
            bad.append(f"the panel has no parameter '{name}' for {p.name}")
            continue
        default, bound = fields[name]
        declared = family.defaults(p.name) if selector is None else {}
        declared = declared or {panel_method: family.defaults(p.name).get(panel_method, p.default)}
        bad += [f"{name}: panel default {default!r}, declared {d!r} ({m})" for m, d in declared.items() if d != default]
        if p.minimum is not None and bound != (p.minimum, p.maximum):
            bad.append(f"{name}: panel range {bound}, declared {(p.minimum, p.maximum)}")
        if p.choices and bound != (list(p.choices),):
            bad.append(f"{name}: panel choices {bound}, declared {p.choices}")
    if selector and fields.get(selector, (None, None))[1] != (list(family.names),):
        bad.append(f"{selector}: panel choices {fields.get(selector)}, declared {family.names}")
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
    assert REGISTRATION.resolve("network", {}) == {"affine": True, "force": False, "nio_iterations": 0, "refine_iterations": 70}
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


def test_the_sks_panel_check_fails_on_a_broken_copy():
    """The panel's trainingIterations is SKS's stage 2 and the teacher's and student's budget."""
    source = SKS_PANEL.read_text(encoding="utf-8")
    broken = source.replace("trainingIterations: Annotated[int, WithinRange(1, 100000)] = 400",
                            "trainingIterations: Annotated[int, WithinRange(1, 10000)] = 500")
    assert broken != source
    assert len(panel_mismatches(SKS_TRAINING, broken)) == 2
    assert len(panel_mismatches(TEACHER_STUDENT, broken)) == 3  # the teacher's default, the student's, the range


@dataclass
class _Config:  # stands in for a trainer's config dataclass (those import torch)
    model: str = "sks"
    iterations: int = 1
    coarse_iterations: int = 1
    precision: str = "fp32"
    seed: int = 0
    crop: int = 128


def test_training_stage_one_budgets_are_derived_the_same_way_everywhere():
    """CLI, Lib and task all resolve through resolve_training: stage 1 is three quarters (SKS) or half (MPTPN)
    of the iterations unless given; MPTPN's 0 skips its stage 1."""
    assert resolve_training(SKS_TRAINING, "sks", {})["coarse_iterations"] == 300
    assert resolve_training(SKS_TRAINING, "sks", {"iterations": 8, "coarse_iterations": 0})["coarse_iterations"] == 6
    assert "coarse_iterations" not in resolve_training(SKS_TRAINING, "unet", {})
    assert resolve_training(MPTPN_TRAINING, "mptpn", {})["pretrain_iterations"] == 300
    assert resolve_training(MPTPN_TRAINING, "mptpn", {"pretrain_iterations": 0})["pretrain_iterations"] == 0
    assert TEACHER_STUDENT.defaults("iterations") == {"teacher": 400, "student": 400}
    assert MPTPN_TRAINING.defaults("iterations") == {"mptpn": 600, "unet": 600}
    parser = argparse.ArgumentParser()
    MPTPN_TRAINING.add_cli_options(parser, skip=("seed",))
    options = {a.dest: a.help for a in parser._actions if a.dest != "help"}
    assert set(options) == {"iterations", "pretrain_iterations", "precision"}
    assert "default 600" in options["iterations"] and "default None" not in options["pretrain_iterations"]


def test_a_training_config_is_checked_against_the_declaration():
    config = training_config(SKS_TRAINING, {"iterations": "8", "crop": 32}, _Config)
    assert config == {"crop": 32, "iterations": 8, "coarse_iterations": 6, "precision": "fp32", "seed": 0, "model": "sks"}
    with pytest.raises(BadInputError, match=r"iterations \(--iterations\) must be at least 1 and at most 100000"):
        training_config(SKS_TRAINING, {"iterations": 0}, _Config)
    with pytest.raises(BadInputError, match=r"precision \(--precision\) 'fp16' is not one of"):
        training_config(SKS_TRAINING, {"precision": "fp16"}, _Config)
    with pytest.raises(BadInputError, match="Unknown SKS training setting.*: crops, validation_cases"):
        training_config(SKS_TRAINING, {"crops": 3, "validation_cases": 1}, _Config)
    with pytest.raises(BadInputError, match="Unknown SKS training method 'vit'"):
        training_config(SKS_TRAINING, {"model": "vit"}, _Config)
    with pytest.raises(BadInputError, match=r"pretrain_iterations .* at least 0.*Fix: Give a value in that range, e\.g\. 0\."):
        resolve_training(MPTPN_TRAINING, "mptpn", {"pretrain_iterations": -1})
