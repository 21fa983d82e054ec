"""The user's configuration: one JSON file in the data directory.

Layout: ``{"backend": "local", "store": "file:///...", "backends": {"gce": {...}, "slurm": {...}}}``.
`offload config set backend gce project my-proj` sets the default backend and puts the other
pairs under that backend's section, which is how users think of it ("configure gce").
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from offload.errors import UsageError
from offload.paths import BACKEND_ENV, STORE_ENV, data_dir

TOP_LEVEL = ("backend", "store", "budget")
# <section>.<key> settings beside the backends' (offload/jobs/tracking.py, offload/jobs/notify.py), and
# the environment variable that overrides each
SECTIONS = {"mlflow": ("tracking_uri", "experiment"), "notify": ("webhook",)}
SECTION_ENV = {"mlflow.tracking_uri": "MLFLOW_TRACKING_URI", "mlflow.experiment": "MLFLOW_EXPERIMENT_NAME",
               "notify.webhook": "OFFLOAD_NOTIFY_WEBHOOK"}
BUDGET_KEYS = ("monthly", "job")  # budget.monthly: this month's spend cap; budget.job: a job's default budget


def config_path():
    return data_dir() / "config.json"


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"config file {path} is not valid JSON: {exc}",
            hint="fix or delete it; `offload config show` prints what is read",
        ) from None


def save_config(cfg: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _coerce(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def set_values(pairs: list[str], *, check: Callable[[str, str, Any], None] | None = None) -> dict[str, Any]:
    """Apply ``key value key value ...`` to the config and save it; nothing is written when one
    pair is refused. ``check(backend, option, value)`` refuses a backend option (the CLI passes
    offload.backends.options.check_option: this layer knows no backend)."""
    if len(pairs) % 2:
        raise UsageError(
            f"`offload config set` takes key value pairs; {pairs[-1]!r} has no value",
            hint="for example: offload config set backend gce project my-proj",
        )
    cfg = load_config()
    items = list(zip(pairs[::2], pairs[1::2], strict=True))
    section = dict(items).get("backend") or cfg.get("backend") or "local"
    for key, value in items:
        if key in TOP_LEVEL:
            cfg[key] = _coerce(value) if key == "budget" else value
        elif key.startswith("budget."):  # budget.monthly, budget.job (dollars; offload/jobs/budget.py)
            name = key.split(".", 1)[1]
            if name not in BUDGET_KEYS:
                raise UsageError(f"unknown config key {key!r}", field=key,
                                 hint=f"budget keys: {', '.join('budget.' + k for k in BUDGET_KEYS)}")
            amount = _coerce(value)
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
                raise UsageError(f"{key} must be an amount in dollars, not {value!r}", field=key,
                                 hint=f"for example: offload config set {key} 100")
            budget = cfg.get("budget")
            cfg["budget"] = {**(budget if isinstance(budget, dict) else {}), name: amount}
        elif key.split(".", 1)[0] in SECTIONS:  # mlflow.tracking_uri, notify.webhook ...
            sect, _, name = key.partition(".")
            if name not in SECTIONS[sect]:
                raise UsageError(f"unknown config key {key!r}", field=key,
                                 hint=f"{sect} keys: {', '.join(f'{sect}.{k}' for k in SECTIONS[sect])}")
            cfg.setdefault(sect, {})[name] = value
        elif key.startswith("backends."):  # the dotted form the README's table uses
            parts = key.split(".")
            if len(parts) != 3 or not all(parts):
                raise UsageError(f"config key {key!r} is not backends.<backend>.<option>",
                                 hint="for example: offload config set backends.local.max_jobs 4", field=key)
            if check is not None:
                check(parts[1], parts[2], _coerce(value))
            cfg.setdefault("backends", {}).setdefault(parts[1], {})[parts[2]] = _coerce(value)
        elif "." in key:
            raise UsageError(f"unknown config key {key!r}",
                             hint=f"top-level keys: {', '.join(TOP_LEVEL)}; backend options: backends.<backend>.<option>",
                             field=key)
        else:
            if check is not None:
                check(section, key, _coerce(value))
            cfg.setdefault("backends", {}).setdefault(section, {})[key] = _coerce(value)
    save_config(cfg)
    return cfg


def default_backend() -> str:
    return os.environ.get(BACKEND_ENV) or load_config().get("backend") or "local"


def backend_options(name: str) -> dict[str, Any]:
    return dict(load_config().get("backends", {}).get(name, {}))


def backend_store(name: str) -> str | None:
    """Store URL configured for a backend (``bucket`` for gce, ``store`` for any), if any.

    A cloud backend needs a store its machines can reach; the user configures it once with the
    backend (`offload config set backend gce bucket gs://b/offload`) rather than globally.
    """
    opts = backend_options(name)
    return opts.get("store") or opts.get("bucket")


def default_store_url() -> str:
    """``OFFLOAD_STORE``, else the config's ``store``, else ``store/`` in the data directory."""
    return os.environ.get(STORE_ENV) or load_config().get("store") or (data_dir() / "store").as_uri()


def effective_config() -> list[tuple[str, Any, str]]:
    """(key, value, source) of every setting in force: ``env`` (an ``OFFLOAD_*`` variable),
    ``file`` (config.json) or ``default``; what `offload config show` prints."""
    cfg = load_config()

    def pick(key: str, env: str, default: Any) -> tuple[str, Any, str]:
        if os.environ.get(env):
            return key, os.environ[env], f"env {env}"
        if cfg.get(key) not in (None, ""):
            return key, cfg[key], "file"
        return key, default, "default"

    rows = [pick("backend", BACKEND_ENV, "local"), pick("store", STORE_ENV, (data_dir() / "store").as_uri())]
    if isinstance(cfg.get("budget"), dict):
        rows += [(f"budget.{k}", v, "file") for k, v in sorted(cfg["budget"].items())]
    elif "budget" in cfg:
        rows.append(("budget", cfg["budget"], "file"))
    for sect, names in SECTIONS.items():
        for name in names:
            env = SECTION_ENV[f"{sect}.{name}"]
            if os.environ.get(env):
                rows.append((f"{sect}.{name}", os.environ[env], f"env {env}"))
            elif (cfg.get(sect) or {}).get(name) not in (None, ""):
                rows.append((f"{sect}.{name}", cfg[sect][name], "file"))
    for name, opts in sorted((cfg.get("backends") or {}).items()):
        rows += [(f"backends.{name}.{key}", value, "file") for key, value in sorted(opts.items())]
    if not (cfg.get("backends") or {}).get("local", {}).get("max_jobs"):
        env_jobs = os.environ.get("OFFLOAD_LOCAL_MAX_JOBS")
        rows.append(("backends.local.max_jobs", env_jobs or os.cpu_count() or 2,
                     "env OFFLOAD_LOCAL_MAX_JOBS" if env_jobs else "default: the CPU count"))
    return rows


def budget_settings() -> dict[str, Any]:
    """``{"monthly": USD | None, "job": USD | None}`` from ``budget.*`` (a bare number under
    ``budget`` is the monthly cap), read fresh at every launch."""
    raw = load_config().get("budget")
    cfg = raw if isinstance(raw, dict) else {"monthly": raw}
    return {k: cfg.get(k) for k in BUDGET_KEYS}
