"""The options each backend reads from the config file (``backends.<backend>.<option>``), so that
`offload config set` refuses a misspelt one (naming the closest known option) instead of writing
a setting nothing reads.

A third-party backend declares its own in ``option_names`` on its class (a backend that declares
none is not checked); the options every backend takes are in :data:`COMMON`.
"""

from __future__ import annotations

import difflib
from typing import Any

from offload.backends.base import backend_class, user_backends
from offload.errors import OffloadError, UsageError
from offload.spec import parse_duration, parse_keep_alive

__all__ = ["COMMON", "BUILTIN", "known_options", "check_option"]

# Read for any backend: where its store is, its monthly budget, how long a machine stays warm,
# the SSH route to a remote host.
COMMON = frozenset({"store", "bucket", "budget_monthly", "keep_alive", "ssh_host", "ssh_port", "ssh_user", "ssh_key"})
BUILTIN: dict[str, frozenset[str]] = {
    "local": frozenset({"max_jobs"}),
    "slurm": frozenset({"partition", "account", "qos", "gpu_flag", "extra_sbatch", "python", "modules", "env_cache",
                        "log_dir"}),
    "gce": frozenset({
        "project", "zone", "zones", "region", "regions", "credentials", "api_endpoint", "prices", "index_url",
        "spot_fallback", "sweep_on_launch", "cancel_wait_s", "operation_timeout_s", "boot_timeout",
        "keep_vm_on_boot_failure", "image", "cpu_image", "disk_gb", "disk_type", "network", "subnetwork",
        "external_ip", "service_account", "scopes", "labels",
        "capacity_backoff_s", "live_prices", "billing_endpoint",  # --wait-for-capacity; live prices (issue 18)
        "ssh_internal_ip", "os_login", "os_login_user", "os_login_endpoint",  # offload ssh/attach (docs/attach.md)
    }),
}
# The options whose values have a type (checked after the value is read as JSON: 4 is a number).
_WHOLE = ("a whole number of at least 1", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1)
_SECONDS = ("a number of seconds (>= 0)", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0)
_FLAG = ("true or false", lambda v: isinstance(v, bool))


def _reads(parse: Any) -> Any:
    def ok(value: Any) -> bool:
        if isinstance(value, bool):
            return False
        try:
            parse(value)
        except UsageError:
            return False
        return True
    return ok


_DURATION = ("a duration like 90s, 15m or 1h (or seconds)", _reads(parse_duration))
_KEEP_ALIVE = ("a duration like 10m or 1h, or 0 for none", _reads(parse_keep_alive))
_TYPES: dict[str, tuple[str, Any]] = {
    "max_jobs": _WHOLE, "ssh_port": _WHOLE, "disk_gb": _WHOLE,
    "cancel_wait_s": _SECONDS, "operation_timeout_s": _SECONDS, "boot_timeout": _DURATION, "keep_alive": _KEEP_ALIVE, "capacity_backoff_s": _SECONDS,
    "budget_monthly": ("an amount in dollars (>= 0)", _SECONDS[1]),
    "spot_fallback": _FLAG, "sweep_on_launch": _FLAG, "live_prices": _FLAG, "external_ip": _FLAG, "keep_vm_on_boot_failure": _FLAG,
    "os_login": _FLAG, "ssh_internal_ip": _FLAG,
}


def known_options(backend: str) -> frozenset[str] | None:
    """The options ``backend`` reads; None when it does not say (a third-party backend without
    ``option_names``)."""
    if backend in BUILTIN:
        return COMMON | BUILTIN[backend]
    names = getattr(backend_class(backend), "option_names", None)
    return COMMON | frozenset(names) if names else None


def check_option(backend: str, option: str, value: Any) -> None:
    """A UsageError naming ``backends.<backend>.<option>`` and the closest known name when the
    backend does not exist, does not read that option, or the value has the wrong type."""
    key = f"backends.{backend}.{option}"
    try:
        known = known_options(backend)
    except OffloadError:
        names = user_backends()
        close = difflib.get_close_matches(backend, names, n=1)
        raise UsageError(f"unknown backend {backend!r} in config key {key!r}", field=key,
                         hint=f"did you mean {close[0]!r}?" if close else f"backends: {', '.join(names)}") from None
    if known is not None and option not in known:
        close = difflib.get_close_matches(option, sorted(known), n=1, cutoff=0.6)
        hint = (f"did you mean backends.{backend}.{close[0]}?" if close
                else f"{backend} options: {', '.join(sorted(known))}")
        raise UsageError(f"unknown option {option!r} for backend {backend!r}", field=key, hint=hint)
    if option in _TYPES and value is not None:
        what, ok = _TYPES[option]
        if not ok(value):
            raise UsageError(f"{key} must be {what}, not {value!r}", field=key,
                             hint=f"for example: offload config set {key} {_example(option)}")


def _example(option: str) -> str:
    return {"max_jobs": "4", "ssh_port": "22", "disk_gb": "200", "budget_monthly": "100", "boot_timeout": "15m",
            "keep_alive": "10m"}.get(
        option, "true" if _TYPES[option] is _FLAG else "30")
