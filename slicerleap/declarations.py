"""A method and its parameters, declared once: name, type, default, range, unit, help. The task validates and fills
in its parameters from the declaration, the CLI builds its options from it, a module's Lib validates with it and a
static test holds the Slicer panel's parameter node against it (DESIGN.md, "Methods are declared once")."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from .errors import BadInputError


@dataclass(frozen=True)
class Parameter:
    name: str  # the job parameter (snake_case); the panel's camelCase name is derived from it
    kind: type  # int, float, str or bool
    default: Any  # None: derived from other parameters, as `help` says
    help: str
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    choices: tuple = ()
    flag: str | None = None  # the CLI option; default --name-with-dashes (a bool that defaults to True: --no-name)
    panel: bool = True  # shown on the module's panel (False: an expert knob of the CLI and the Python API only)

    @property
    def panel_name(self) -> str:
        """The parameter node's camelCase field: time_budget_s -> timeBudget, working_spacing_mm -> workingSpacing."""
        head, *rest = self.name.removesuffix("_mm").removesuffix("_s").split("_")
        return head + "".join(word.title() for word in rest)

    @property
    def cli_flag(self) -> str:
        if self.flag:
            return self.flag
        dashed = self.name.replace("_", "-").removesuffix("-mm")
        return f"--no-{dashed}" if self.kind is bool and self.default else f"--{dashed}"

    @property
    def label(self) -> str:
        """How messages name it: the Python API's keyword and the CLI's option."""
        return f"{self.name} ({self.cli_flag})"

    def check(self, value) -> Any:
        """The value as its declared type, inside its range; else BadInputError naming the option and the range."""
        try:
            if self.kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError  # int(2.5) would quietly run 2
            value = self.kind(value) if self.kind is not bool else bool(value)
        except (TypeError, ValueError):
            raise BadInputError(f"{self.label} must be {self.kind.__name__} (got {value!r}).",
                                f"Give e.g. the default, {self.default if self.default is not None else self.minimum}.") from None
        unit = f" {self.unit}" if self.unit else ""
        if self.choices and value not in self.choices:
            raise BadInputError(f"{self.label} '{value}' is not one of: {', '.join(map(str, self.choices))}.",
                                f"Use one of them (default {self.default}).")
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            low = "" if self.minimum is None else f"at least {self.minimum:g}{unit}"
            high = "" if self.maximum is None else f"at most {self.maximum:g}{unit}"
            example = f"the default {self.default:g}" if self.default is not None else f"{self.minimum:g}"
            raise BadInputError(f"{self.label} must be {' and '.join(p for p in (low, high) if p)} (got {value:g}{unit}).",
                                f"Give a value in that range, e.g. {example}{unit}.")
        return value


@dataclass(frozen=True)
class Method:
    name: str
    task: str
    help: str
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class MethodFamily:
    """The methods one task runs, and the parameters they share (e.g. registration's affine pre-alignment)."""
    task: str
    methods: tuple[Method, ...]
    shared: tuple[Parameter, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()  # (alias, method), e.g. superres's ("cubic", "bspline")
    title: str = ""  # how messages name the task, e.g. "super-resolution"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.methods)

    def method(self, name: str) -> Method:
        name = dict(self.aliases).get(name, name)
        for method in self.methods:
            if method.name == name:
                return method
        raise BadInputError(f"Unknown {self.title or self.task} method '{name}'.", f"Use one of: {', '.join(self.names)}.")

    def parameters(self) -> tuple[Parameter, ...]:
        """Every parameter once: the shared ones, then each method's (a name several methods declare, e.g. superres's
        iterations with a default per method, appears as the first method's)."""
        seen, out = set(), []
        for p in self.shared + tuple(p for m in self.methods for p in m.parameters):
            if p.name not in seen:
                seen.add(p.name)
                out.append(p)
        return tuple(out)

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters() if p.name == name)

    def check_known(self, given: dict) -> None:
        """Every key of `given` is a declared parameter (of some method); else BadInputError naming the strays."""
        unknown = set(given) - {p.name for p in self.parameters()}
        if unknown:
            raise BadInputError(f"Unknown {self.title or self.task} parameter(s): {', '.join(sorted(unknown))}.",
                                f"Use: {', '.join(p.name for p in self.parameters())}.")

    def resolve(self, method: str, given: dict) -> dict:
        """The parameters `method` runs with: each declared one checked, or its default when not given (None)."""
        declared = self.shared + self.method(method).parameters
        return {p.name: p.default if given.get(p.name) is None else p.check(given[p.name]) for p in declared}

    def defaults(self, name: str) -> dict[str, Any]:
        """{method: its default} of the parameter `name`, for the methods that declare it."""
        return {m.name: p.default for m in self.methods for p in m.parameters if p.name == name}

    def cli_values(self, args: argparse.Namespace) -> dict:
        """The declared parameters as add_cli_options parsed them (None: not given; a skipped one: None too)."""
        return {p.name: getattr(args, p.name, None) for p in self.parameters()}

    def add_method_option(self, parser: argparse.ArgumentParser, flag: str = "--method", default: str | None = None,
                          default_note: str | None = None) -> None:
        """The option that picks the method: its choices (aliases included) and each method's help, from here."""
        aliases = dict(self.aliases)
        described = "; ".join(f"{m.name}: {m.help}" for m in self.methods) + "".join(f"; {a}: {m}" for a, m in aliases.items())
        parser.add_argument(flag, default=default, choices=[*self.names, *aliases],
                            help=f"{described} ({default_note or f'default {default}'})")

    def add_cli_options(self, parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
        """One option per parameter (but `skip`, which the command spells its own way); None when not given, so the
        declaration's default for the chosen method applies in the task."""
        for p in self.parameters():
            if p.name in skip:
                continue
            defaults = self.defaults(p.name)
            where = f" (method {', '.join(defaults)})" if defaults and len(defaults) < len(self.methods) else ""
            if p.kind is bool:
                parser.add_argument(p.cli_flag, dest=p.name, action="store_const", const=not p.default, default=None,
                                    help=p.help + where)
                continue
            unit = f" {p.unit}" if p.unit else ""
            if len(set(defaults.values())) > 1:
                default = ", ".join(f"{value}{unit} ({method})" for method, value in defaults.items())
                where = ""
            else:
                default = f"{p.default}{unit}"
            parser.add_argument(p.cli_flag, dest=p.name, type=p.kind, default=None, choices=p.choices or None,
                                help=p.help + where + ("" if p.default is None else f"; default {default}"))
