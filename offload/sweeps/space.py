"""Search spaces, samplers and pruners for ``offload sweep``: everything that needs no job.

A space comes from ``space.yaml`` (or a dict in Python)::

    lr:         {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
    layers:     {type: int, low: 1, high: 6}
    optimizer:  {type: categorical, choices: [adam, sgd]}
    batch_size: 256                     # fixed: passed to every trial as is

Every mistake is reported with the parameter's name and the fix, before a single job starts,
because a typo found after 50 trials have been queued costs real money. Optuna is imported
lazily (it is the ``sweep`` extra).
"""

from __future__ import annotations

import difflib
import keyword
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from offload.errors import UsageError

TYPES = ("float", "int", "categorical", "fixed")
_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
    "fixed": {"type", "value"},
}
SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp")
PRUNERS = ("median", "percentile", "hyperband", "successive-halving", "none")
DIRECTIONS = ("maximize", "minimize")


class SpaceError(UsageError):
    """The search space (space.yaml or ``space=``) is invalid.

    ``field`` is the REST body field: ``space.<name>`` for one parameter, ``space`` for the whole
    (``enqueue`` for a known-good point that does not fit the space).
    """

    default_field = "space"


def _field(name: Any) -> str:
    """The request field of one parameter of the space."""
    return f"space.{name}" if isinstance(name, str) and name else "space"


def optuna_module():
    """Optuna, imported on first use: it is the optional ``sweep`` extra and slow to import."""
    try:
        import optuna
    except ImportError:
        raise UsageError(
            "sweeps need Optuna, which is not installed",
            hint="pip install 'jupyter-offload[sweep]'",
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# Parameters ---------------------------------------------------------------------------------
@dataclass
class Param:
    """One searched or fixed parameter; ``suggest`` maps it onto ``trial.suggest_*``."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: list[Any] = field(default_factory=list)
    value: Any = None

    @property
    def searched(self) -> bool:
        return self.type != "fixed"

    def suggest(self, trial: Any) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        return self.value

    def distribution(self) -> Any:
        """The Optuna distribution (for ``study.ask(fixed_distributions)``)."""
        d = optuna_module().distributions
        if self.type == "float":
            return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return d.IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        if self.type == "categorical":
            return d.CategoricalDistribution(self.choices)
        raise ValueError("a fixed parameter has no distribution")

    def grid_values(self) -> list[Any]:
        """Every value the grid sampler should try; floats need a step to be finite."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.type == "float":
            if self.step is None:
                raise SpaceError(
                    f"parameter {self.name!r}: the grid sampler needs a finite set of values",
                    hint=f"add step: to {self.name!r}, or make it type: categorical with choices:",
                    field=_field(self.name),
                )
            n = int(math.floor((self.high - self.low) / self.step + 1e-9))
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        return [self.value]

    def to_dict(self) -> dict[str, Any]:
        if self.type == "fixed":
            return {"type": "fixed", "value": self.value}
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass
class Space:
    params: dict[str, Param]

    @property
    def searched(self) -> dict[str, Param]:
        return {n: p for n, p in self.params.items() if p.searched}

    @property
    def fixed(self) -> dict[str, Any]:
        return {n: p.value for n, p in self.params.items() if not p.searched}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sampled values for one trial, fixed values included (what the notebook receives)."""
        values = {n: p.suggest(trial) for n, p in self.params.items() if p.searched}
        return {**values, **self.fixed}

    def grid(self) -> dict[str, list[Any]]:
        return {n: p.grid_values() for n, p in self.searched.items()}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def to_dict(self) -> dict[str, Any]:
        return {n: p.to_dict() for n, p in self.params.items()}

    def check_values(self, values: dict[str, Any], *, where: str) -> dict[str, Any]:
        """Validate a known-good point (``--enqueue``) against the space; returns the searched part."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name not in self.params:
                raise SpaceError(
                    f"{where}: {name!r} is not a parameter of the space",
                    hint=_did_you_mean(name, self.params) or f"parameters: {', '.join(self.params)}",
                    field="enqueue",
                )
            p = self.params[name]
            if not p.searched:
                continue  # fixed values are the same for every trial
            if p.type == "categorical":
                if value not in p.choices:
                    raise SpaceError(f"{where}: {name}={value!r} is not one of the choices {p.choices}", field="enqueue")
            else:
                num = _number(value, name, "value", integer=p.type == "int", field="enqueue")
                if not (p.low <= num <= p.high):
                    raise SpaceError(
                        f"{where}: {name}={value!r} is outside [{p.low}, {p.high}]",
                        hint="widen the range in the space or change the enqueued value",
                        field="enqueue",
                    )
                value = num
            out[name] = value
        missing = [n for n in self.searched if n not in out]
        if missing:
            raise SpaceError(
                f"{where}: no value for {', '.join(missing)}",
                hint="an enqueued point names every searched parameter",
                field="enqueue",
            )
        return out


def _did_you_mean(word: str, options: Any) -> str | None:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _number(v: Any, name: str, key: str, *, integer: bool = False, field: str | None = None) -> float | int:
    """YAML 1.1 reads ``1e-5`` as a string (only ``1.0e-5`` is a float): accept both.

    ``field`` is the request field a bad number is reported against (default: the parameter)."""
    field = field or _field(name)
    if isinstance(v, bool) or v is None:
        raise SpaceError(f"parameter {name!r}: {key} must be a number, not {v!r}", field=field)
    if isinstance(v, str):
        try:
            v = float(v) if any(c in v.lower() for c in ".en") else int(v)
        except ValueError:
            raise SpaceError(f"parameter {name!r}: {key} must be a number, not {v!r}", field=field) from None
    if not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        raise SpaceError(f"parameter {name!r}: {key} must be a finite number, not {v!r}", field=field)
    if integer:
        if isinstance(v, float) and not v.is_integer():
            raise SpaceError(
                f"parameter {name!r}: {key}={v} is not a whole number but the type is int",
                hint=f"use a whole number, or type: float for {name!r}",
                field=field,
            )
        return int(v)
    return float(v)


def parse_param(name: Any, raw: Any) -> Param:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SpaceError(
            f"parameter name {name!r} is not a Python identifier",
            hint="names must match a variable in the notebook's parameters cell",
            field=_field(name),
        )
    if isinstance(raw, (list, tuple)):
        raise SpaceError(
            f"parameter {name!r}: a bare list is ambiguous",
            hint=f"write {name}: {{type: categorical, choices: [...]}} to search it, "
            f"or {name}: {{type: fixed, value: [...]}} to pass the list as is",
            field=_field(name),
        )
    if not isinstance(raw, dict):
        if isinstance(raw, set):
            raise SpaceError(f"parameter {name!r}: a set is not a value", hint="use a list", field=_field(name))
        return Param(name, "fixed", value=raw)
    keys = set(raw)
    typ = raw.get("type")
    if typ is None:
        if "choices" in keys:
            typ = "categorical"
        elif keys == {"value"}:
            typ = "fixed"
        else:
            raise SpaceError(
                f"parameter {name!r}: missing type",
                hint=f"add type: float, int or categorical to {name!r} (or write {name}: VALUE for a fixed value)",
                field=_field(name),
            )
    if typ not in TYPES:
        hint = _did_you_mean(typ, TYPES) or f"type is one of {', '.join(TYPES)}"
        raise SpaceError(f"parameter {name!r}: unknown type {typ!r}", hint=hint, field=_field(name))
    unknown = keys - _KEYS[typ]
    if unknown:
        bad = sorted(map(str, unknown))[0]
        allowed = sorted(_KEYS[typ] - {"type"})
        raise SpaceError(
            f"parameter {name!r}: unknown key {bad!r} for type {typ}",
            hint=_did_you_mean(bad, allowed) or f"keys for {typ}: {', '.join(allowed)}",
            field=_field(name),
        )
    if typ == "fixed":
        if "value" not in raw:
            raise SpaceError(f"parameter {name!r}: type fixed needs value:", field=_field(name))
        return Param(name, "fixed", value=raw["value"])
    if typ == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise SpaceError(
                f"parameter {name!r}: choices must be a non-empty list",
                hint=f"for example {name}: {{type: categorical, choices: [adam, sgd]}}",
                field=_field(name),
            )
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise SpaceError(
                    f"parameter {name!r}: choice {c!r} is not a number, string, bool or null",
                    hint="Optuna stores choices as scalars: use a string key and map it in the notebook",
                    field=_field(name),
                )
        if len({repr(c) for c in choices}) != len(choices):
            raise SpaceError(f"parameter {name!r}: choices contain duplicates", hint="list each choice once", field=_field(name))
        return Param(name, "categorical", choices=list(choices))
    # float / int
    for k in ("low", "high"):
        if k not in raw:
            raise SpaceError(
                f"parameter {name!r}: type {typ} needs {k}:",
                hint=f"for example {name}: {{type: {typ}, low: 1, high: 10}}",
                field=_field(name),
            )
    integer = typ == "int"
    low = _number(raw["low"], name, "low", integer=integer)
    high = _number(raw["high"], name, "high", integer=integer)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"parameter {name!r}: log must be true or false, not {log!r}", field=_field(name))
    step = raw.get("step")
    if low >= high:
        raise SpaceError(
            f"parameter {name!r}: low ({raw['low']}) must be below high ({raw['high']})",
            hint=f"swap them, or write {name}: {raw['low']} for a fixed value",
            field=_field(name),
        )
    if log and low <= 0:
        raise SpaceError(
            f"parameter {name!r}: log scale needs low > 0, got low={raw['low']}",
            hint=f"set low to a small positive number (e.g. 1.0e-6) or drop log: true from {name!r}",
            field=_field(name),
        )
    if step is not None:
        step = _number(step, name, "step", integer=integer)
        if step <= 0:
            raise SpaceError(f"parameter {name!r}: step must be positive, got {raw['step']}", field=_field(name))
        if log and (not integer or step != 1):
            raise SpaceError(
                f"parameter {name!r}: step and log: true cannot be combined",
                hint=f"drop step: or log: from {name!r}",
                field=_field(name),
            )
        if step > high - low:
            raise SpaceError(
                f"parameter {name!r}: step {step} is larger than the range {low}..{high}",
                hint="use a smaller step",
                field=_field(name),
            )
    return Param(name, typ, low=low, high=high, log=log, step=step)


def load_space(space: Any) -> Space:
    """A dict, a path to a YAML/JSON file, or YAML text -> a validated :class:`Space`."""
    if isinstance(space, Space):
        return space
    where = "space"
    if isinstance(space, (str, os.PathLike)):
        text = str(space)
        p = Path(text).expanduser()
        if isinstance(space, os.PathLike) or (("\n" not in text and ":" not in text) or p.suffix in (".yaml", ".yml", ".json")):
            if not p.is_file():
                raise SpaceError(f"space file {text} does not exist", hint="pass --space space.yaml with the path of your search space", field="space")
            text, where = p.read_text(), str(p)
        try:
            space = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark else ""
            raise SpaceError(
                f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}",
                hint="each line is `name: {type: float, low: 0.1, high: 1}` or `name: value`",
                field="space",
            ) from None
    if not isinstance(space, dict) or not space:
        raise SpaceError(
            f"{where}: the search space must be a non-empty mapping of parameter name to range",
            hint="for example `lr: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}`",
            field="space",
        )
    params = {}
    for name, raw in space.items():
        try:
            params[name] = parse_param(name, raw)
        except SpaceError as exc:
            if where != "space":
                exc.message = f"{where}: {exc.message}"
            raise
    result = Space(params)
    if not result.searched:
        raise SpaceError(
            f"{where}: every parameter is fixed, there is nothing to search",
            hint="give at least one parameter a type: float, int or categorical range",
            field="space",
        )
    return result


def check_against_notebook(space: Space, notebook_params: dict[str, Any] | None) -> None:
    """Names must exist in the parameters cell: papermill would silently ignore a typo."""
    if notebook_params is None:
        return
    for name in space.params:
        if name not in notebook_params:
            raise SpaceError(
                f"parameter {name!r} is not in the notebook's parameters cell",
                hint=_did_you_mean(name, notebook_params) or f"parameters cell defines: {', '.join(notebook_params) or 'nothing'}",
                field=_field(name),
            )


# Objectives ---------------------------------------------------------------------------------
def parse_objectives(objective: Any, direction: Any) -> tuple[list[str], list[str]]:
    """``"val_acc"`` or ``["acc", "latency"]`` / ``"acc,latency"`` with one direction each."""
    names = objective.split(",") if isinstance(objective, str) else list(objective or [])
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise UsageError("no objective given", hint="name the metric the notebook logs: --objective val_acc",
                         field="objective")
    dirs = direction.split(",") if isinstance(direction, str) else list(direction or [])
    dirs = [str(d).strip().lower() for d in dirs if str(d).strip()]
    alias = {"max": "maximize", "min": "minimize"}
    dirs = [alias.get(d, d) for d in dirs]
    if len(dirs) == 1 and len(names) > 1:
        dirs = dirs * len(names)
    for d in dirs:
        if d not in DIRECTIONS:
            raise UsageError(f"unknown direction {d!r}", hint="use maximize or minimize", field="direction")
    if len(dirs) != len(names):
        raise UsageError(
            f"{len(names)} objectives but {len(dirs)} directions",
            hint="give one direction per objective: --objective acc,latency --direction maximize,minimize",
            field="direction",
        )
    if len(set(names)) != len(names):
        raise UsageError("an objective is listed twice", hint="list each metric once", field="objective")
    return names, dirs


# Samplers and pruners -----------------------------------------------------------------------
def _parse_options(text: str, *, field: str) -> tuple[str, dict[str, Any]]:
    """``"percentile:percentile=50,n_startup_trials=3"`` -> name and keyword arguments."""
    name, _, rest = text.partition(":")
    opts: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        k, eq, v = item.partition("=")
        if not eq:
            raise UsageError(f"cannot read option {item!r} in {text!r}", hint="write name:key=value,key=value",
                             field=field)
        opts[k.strip()] = yaml.safe_load(v)
    return name.strip().lower(), opts


def make_sampler(sampler: Any, *, seed: int | None, space: Space, n_objectives: int = 1) -> Any:
    """Build the sampler; pins Optuna-5 defaults explicitly so 4.x and 5.x behave alike."""
    optuna = optuna_module()
    if not isinstance(sampler, str):
        return sampler  # an optuna sampler object: the caller knows best
    name, opts = _parse_options(sampler, field="sampler")
    try:
        if name == "tpe":
            kw = {"multivariate": True, "constant_liar": True, "n_startup_trials": 10}
            return optuna.samplers.TPESampler(seed=seed, **{**kw, **opts})
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed, **opts)
        if name == "grid":
            return optuna.samplers.GridSampler(space.grid(), seed=seed, **opts)
        if name == "cmaes":
            if n_objectives > 1:
                raise UsageError("the cmaes sampler handles one objective only", hint="use --sampler tpe for several objectives", field="sampler")
            try:
                import cmaes  # noqa: F401  (optional, only this sampler needs it: ask for it here)
            except ImportError:
                raise UsageError("the cmaes sampler needs the cmaes package", hint="pip install cmaes", field="sampler") from None
            return optuna.samplers.CmaEsSampler(seed=seed, **opts)
        if name == "gp":
            for mod in ("torch", "scipy"):
                try:
                    __import__(mod)
                except ImportError:
                    raise UsageError(f"the gp sampler needs {mod}", hint=f"pip install {mod}, or use --sampler tpe", field="sampler") from None
            return optuna.samplers.GPSampler(seed=seed, **opts)
    except TypeError as exc:
        raise UsageError(f"bad option for sampler {name!r}: {exc}", field="sampler") from None
    raise UsageError(f"unknown sampler {name!r}", hint=_did_you_mean(name, SAMPLERS) or f"one of {', '.join(SAMPLERS)}", field="sampler")


def make_pruner(pruner: Any, *, n_objectives: int = 1) -> Any:
    optuna = optuna_module()
    if pruner is None or pruner is False:
        return optuna.pruners.NopPruner()
    if not isinstance(pruner, str):
        return pruner
    name, opts = _parse_options(pruner, field="pruner")
    name = name.replace("_", "-")
    if name != "none" and n_objectives > 1:
        raise UsageError(
            "pruning does not support several objectives",
            hint="use --pruner none, or sweep one objective",
            field="pruner",
        )
    p = optuna.pruners
    try:
        if name == "median":
            return p.MedianPruner(**{"n_startup_trials": 5, "n_warmup_steps": 0, **opts})
        if name == "percentile":
            return p.PercentilePruner(**{"percentile": 25.0, **opts})
        if name == "hyperband":
            return p.HyperbandPruner(**opts)
        if name in ("successive-halving", "sha", "asha"):
            return p.SuccessiveHalvingPruner(**opts)
        if name == "none":
            return p.NopPruner()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad option for pruner {name!r}: {exc}", field="pruner") from None
    raise UsageError(f"unknown pruner {name!r}", hint=_did_you_mean(name, PRUNERS) or f"one of {', '.join(PRUNERS)}", field="pruner")


def load_enqueue(enqueue: Any, space: Space) -> list[dict[str, Any]]:
    """``--enqueue params.yaml``: one mapping or a list of mappings of known-good points."""
    if enqueue is None:
        return []
    where = "enqueue"
    if isinstance(enqueue, (str, os.PathLike)):
        p = Path(enqueue).expanduser()
        if not p.is_file():
            raise SpaceError(f"enqueue file {enqueue} does not exist", hint="pass --enqueue with a YAML file of known-good points", field="enqueue")
        try:
            enqueue = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise SpaceError(f"{p}: not valid YAML: {exc}", field="enqueue") from None
        where = str(p)
    points = [enqueue] if isinstance(enqueue, dict) else enqueue
    if not isinstance(points, list) or not all(isinstance(x, dict) for x in points):
        raise SpaceError(f"{where}: expected a mapping or a list of mappings of parameter values", field="enqueue")
    return [space.check_values(pt, where=f"{where} point {i + 1}") for i, pt in enumerate(points)]
