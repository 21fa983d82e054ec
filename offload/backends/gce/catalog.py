"""GPU and machine names -> Compute Engine shapes and candidate zones.

Two ways to ask for a GPU: ``--gpu l4`` (we pick the smallest shape that carries it and meets
``cpus``/``memory_gb``) or ``--machine g2-standard-8`` (the shape names its GPU). n1 shapes take
attached accelerators (T4, V100, P4); a2/a3/g2 shapes carry theirs. Every unknown name is an
error that lists the valid ones, because a typo must never turn into a silent CPU VM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from offload.backends.base import Machine
from offload.backends.cost import machine_price
from offload.errors import UsageError
from offload.spec import Resources

DEFAULT_CPU_MACHINE = "e2-standard-4"
DEFAULT_ATTACH_MACHINE = "n1-standard-8"


@dataclass(frozen=True)
class Shape:
    """One concrete thing to ask GCE for."""

    machine: str
    gpu: str | None  # catalog key ("l4"), None for CPU-only
    gpu_count: int
    accelerator: str | None  # GCE accelerator type name when attached (n1), else None
    built_in: bool  # the machine type carries the GPU (a2/a3/g2)

    @property
    def label(self) -> str:
        return f"{self.machine}" + (f" + {self.gpu_count}x {self.gpu}" if self.accelerator else "")


def gpu_key(table: dict[str, Any], name: str) -> str:
    key = name.strip().lower()
    key = table.get("gpu_aliases", {}).get(key, key)
    if key not in table["gpus"]:
        raise UsageError(
            f"unknown GPU {name!r}",
            hint=f"valid GPUs: {', '.join(sorted(table['gpus']))} (see `offload machines`)",
        )
    return key


def check_machine(table: dict[str, Any], name: str) -> dict[str, Any]:
    entry = table["machines"].get(name)
    if entry is None:
        raise UsageError(
            f"unknown machine type {name!r}",
            hint=f"valid machine types: {', '.join(sorted(table['machines']))} (see `offload machines`)",
        )
    return entry


def shapes_for(table: dict[str, Any], res: Resources) -> list[Shape]:
    """Shapes to try, in order (one per GPU in a fallback list such as ``l4,t4``)."""
    gpus = [g for g in (res.gpu or "").split(",") if g.strip()]
    if gpus and all(g.strip().isdigit() for g in gpus):  # a bare count ("1") as SLURM takes it
        raise UsageError(
            f"--gpu {res.gpu!r} names no GPU type for gce",
            hint=f"name one: {', '.join(sorted(table['gpus']))}",
        )
    count = max(1, int(res.gpu_count or 1))
    if res.machine:
        entry = check_machine(table, res.machine)
        if entry.get("gpu"):  # accelerator-optimized: the machine decides the GPU
            built = entry["gpu"]
            if gpus and built not in {gpu_key(table, g) for g in gpus}:
                raise UsageError(
                    f"machine {res.machine} carries {entry['gpu_count']}x {built}, not {res.gpu}",
                    hint=f"drop --gpu, or pick a machine that carries {res.gpu}",
                )
            return [Shape(res.machine, built, int(entry["gpu_count"]), None, True)]
        if not gpus:
            return [Shape(res.machine, None, 0, None, False)]
        shapes = []
        for g in gpus:
            key = gpu_key(table, g)
            if key not in entry.get("accepts", []):
                raise UsageError(
                    f"machine {res.machine} cannot take a {key} GPU",
                    hint=f"it takes {', '.join(entry.get('accepts', [])) or 'no GPUs'}; "
                    f"or use --gpu {key} without --machine",
                )
            shapes.append(Shape(res.machine, key, count, table["gpus"][key]["accelerator"], False))
        return shapes
    if not gpus:
        return [Shape(DEFAULT_CPU_MACHINE, None, 0, None, False)]
    shapes = []
    for g in gpus:
        key = gpu_key(table, g)
        info = table["gpus"][key]
        if info.get("attach"):
            fits = [
                (m, e) for m, e in table["machines"].items() if key in e.get("accepts", []) and _fits(e, res)
            ]
            if not fits:
                raise UsageError(f"no n1 shape meets cpus={res.cpus} memory_gb={res.memory_gb}")
            fits.sort(key=lambda me: (me[1]["vcpus"], me[1]["memory_gb"]))
            # Prefer the 8-vCPU default when nothing is asked: 4 vCPUs starve a data loader.
            pick = DEFAULT_ATTACH_MACHINE if not (res.cpus or res.memory_gb) else fits[0][0]
            shapes.append(Shape(pick, key, count, info["accelerator"], False))
        else:
            fits = [
                (m, e)
                for m, e in table["machines"].items()
                if e.get("gpu") == key and int(e.get("gpu_count", 0)) == count and _fits(e, res)
            ]
            if not fits:
                offered = sorted({int(e["gpu_count"]) for e in table["machines"].values() if e.get("gpu") == key})
                raise UsageError(
                    f"no machine carries {count}x {key} with cpus={res.cpus} memory_gb={res.memory_gb}",
                    hint=f"{key} comes in counts {', '.join(map(str, offered))}",
                )
            fits.sort(key=lambda me: (me[1]["vcpus"], me[1]["memory_gb"]))
            shapes.append(Shape(fits[0][0], key, count, None, True))
    return shapes


def _fits(entry: dict[str, Any], res: Resources) -> bool:
    return (res.cpus is None or entry["vcpus"] >= res.cpus) and (
        res.memory_gb is None or entry["memory_gb"] >= res.memory_gb
    )


def zones_for(table: dict[str, Any], shape: Shape, region: str) -> list[str]:
    """Zones of ``region`` that offer the shape's GPU (every zone letter we know for CPU jobs)."""
    if shape.gpu is None:
        known = sorted({z for g in table["gpus"].values() for z in g.get("zones", {}).get(region, [])})
        return known or [f"{region}-a", f"{region}-b", f"{region}-c"]
    return list(table["gpus"][shape.gpu].get("zones", {}).get(region, []))


def machine_list(table: dict[str, Any], region: str | None = None) -> list[Machine]:
    """Every shape with a price, GPU shapes first: what `offload machines` prints."""
    out: list[Machine] = []
    for name, e in table["machines"].items():
        if e.get("gpu"):
            p = machine_price(table, name, region=region)
            out.append(
                Machine(name, e["gpu"], int(e["gpu_count"]), e["vcpus"], float(e["memory_gb"]),
                        p.on_demand, p.spot, f"{e['gpu_count']}x {e['gpu']} built in")
            )
        elif e.get("accepts"):
            for g in e["accepts"]:
                p = machine_price(table, name, gpu=g, gpu_count=1, region=region)
                out.append(
                    Machine(f"{name}+{g}", g, 1, e["vcpus"], float(e["memory_gb"]), p.on_demand, p.spot,
                            f"--machine {name} --gpu {g}")
                )
        else:
            p = machine_price(table, name, region=region)
            out.append(Machine(name, None, 0, e["vcpus"], float(e["memory_gb"]), p.on_demand, p.spot, "CPU only"))
    out.sort(key=lambda m: (m.gpu is None, m.gpu or "", m.gpu_count, m.price_per_hour or 0))
    return out
