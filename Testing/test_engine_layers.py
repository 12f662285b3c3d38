"""The engine's layers: a lower layer never imports a higher one (not even inside a function), the packages form no
import cycle, and only slicerleap/scene/ (and the web app, slicerleap/web/) imports Slicer, VTK or Qt. Each rule is
also proved on a broken copy of the tree. Read from the source (ast): nothing is imported."""
import ast
import shutil
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "slicerleap"

# rank of each top-level part of the engine: imports go to the same or a lower rank only
RANKS = {
    **dict.fromkeys(["slicerleap", "errors", "volume", "resources", "json_files", "environment", "device", "best_weights",
                     "mixed_precision", "lazy_entries", "declarations", "distributed", "training_state"], 0),
    "io": 1, "transforms": 2, "jobs": 2, "models": 3, "segmentation": 4, "registration": 5, "enhancement": 5, "reconstruction": 5,
    "federated": 6, "data": 6, "tasks": 7, "batch": 7, "worker": 8, "session_worker": 8, "scene": 9, "web": 9,
    "demo_report": 9, "demo": 10, "cli": 10,
}
# inside slicerleap/cli/: common.py < the command groups (every other module) < the package, which assembles the
# parser < __main__; a command group imports common.py only, never another group
CLI_RANKS = {"cli.common": 0, "cli": 2, "cli.__main__": 3}
APPLICATION_ONLY = {"slicer", "vtk", "qt", "ctk", "mrml", "vtkmodules"}  # Slicer's own Python world
MAY_IMPORT_SLICER = {"scene", "web"}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_edges(root: Path) -> list[tuple[str, str, str]]:
    """(importing module, imported module, file:line) for every import in the tree, function-level ones included."""
    edges = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("slicerleap",) + path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                targets = [".".join(base + ([node.module] if node.module else []))]
                if node.module is None:  # from . import x: x is a module, or a name defined in the package
                    folder = root.parent.joinpath(*targets[0].split("."))
                    targets = [f"{targets[0]}.{alias.name}" if (folder / alias.name).is_dir()
                               or (folder / f"{alias.name}.py").exists() else targets[0] for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            edges += [(module, target, f"{path.relative_to(root.parent)}:{node.lineno}") for target in targets]
    return edges


def upward_imports(root: Path) -> list[str]:
    bad = []
    for source, target, where in import_edges(root):
        if target.split(".")[0] != "slicerleap":
            continue
        a, b = _part(source), _part(target)
        if a != b and RANKS.get(b, 99) > RANKS.get(a, -1):
            bad.append(f"{where}: {a} (rank {RANKS.get(a)}) imports {b} (rank {RANKS.get(b)})")
    return bad


def _cli_module(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[1:3]) if parts[1:2] == ["cli"] else None


def cli_imports(root: Path) -> list[str]:
    """Imports between modules of slicerleap/cli/ that do not go strictly down CLI_RANKS."""
    bad = []
    for source, target, where in import_edges(root):
        a, b = _cli_module(source), _cli_module(target)
        if a and b and a != b and CLI_RANKS.get(b, 1) >= CLI_RANKS.get(a, 1):
            bad.append(f"{where}: {a} imports {b}")
    return bad


def package_cycles(root: Path) -> list[list[str]]:
    graph: dict[str, set] = {}
    for source, target, _ in import_edges(root):
        if target.split(".")[0] == "slicerleap" and _part(source) != _part(target):
            graph.setdefault(_part(source), set()).add(_part(target))
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def application_imports(root: Path) -> list[str]:
    return [f"{where}: imports {target}" for source, target, where in import_edges(root)
            if target.split(".")[0] in APPLICATION_ONLY and _part(source) not in MAY_IMPORT_SLICER]


def test_every_part_of_the_engine_has_a_rank():
    parts = {_part(m) for m, _, _ in import_edges(ENGINE)}
    assert parts <= set(RANKS), f"give these a rank in RANKS: {sorted(parts - set(RANKS))}"


def test_no_lower_layer_imports_a_higher_one():
    assert upward_imports(ENGINE) == []


def test_cli_command_groups_import_only_the_shared_helpers():
    assert cli_imports(ENGINE) == []


def test_the_engine_has_no_import_cycle():
    assert package_cycles(ENGINE) == []


def test_only_the_scene_layer_imports_slicer():
    assert application_imports(ENGINE) == []


def test_each_rule_fails_on_a_broken_copy(tmp_path):
    broken = tmp_path / "slicerleap"
    shutil.copytree(ENGINE, broken, ignore=shutil.ignore_patterns("__pycache__"))
    catalog = broken / "models" / "catalog.py"
    catalog.write_text(catalog.read_text(encoding="utf-8") + "\n\ndef _bad():\n    from ..segmentation import metrics\n",
                       encoding="utf-8")
    assert any("models/catalog.py" in line for line in upward_imports(broken))
    metrics = broken / "segmentation" / "metrics.py"
    metrics.write_text(metrics.read_text(encoding="utf-8") + "\n\ndef _bad():\n    from ..tasks import segment\n"
                       "    import slicer\n", encoding="utf-8")
    assert any(cycle for cycle in package_cycles(broken) if "segmentation" in cycle and "tasks" in cycle) or \
        any("segmentation/metrics.py" in line for line in upward_imports(broken))
    assert any("segmentation/metrics.py" in line for line in application_imports(broken))
    (broken / "tasks" / "loop.py").write_text("from ..cli import main\n", encoding="utf-8")
    (broken / "cli" / "common.py").write_text((broken / "cli" / "common.py").read_text(encoding="utf-8")
                                              + "\nfrom ..tasks import loop\n", encoding="utf-8")
    assert any({"tasks", "cli"} <= set(cycle) for cycle in package_cycles(broken))
    assert cli_imports(broken) == []
    segment = broken / "cli" / "segment.py"
    segment.write_text(segment.read_text(encoding="utf-8") + "\n\ndef _bad():\n    from .register import cmd_register\n"
                       "    from . import main\n", encoding="utf-8")
    (broken / "cli" / "common.py").write_text((broken / "cli" / "common.py").read_text(encoding="utf-8")
                                              + "\nfrom .train import cmd_train\n", encoding="utf-8")
    assert {line.split(": ", 1)[1] for line in cli_imports(broken)} == {
        "cli.segment imports cli.register", "cli.segment imports cli", "cli.common imports cli.train"}
