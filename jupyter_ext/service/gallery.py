"""The gallery: a card per executed notebook (thumbnail = its first image output), and the
comparison of two jobs (parameters, metrics with deltas, outputs cell by cell)."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

from jupyter_ext.service.core import OffloadService, jsonable
from jupyter_ext.service.errors import ApiError
from jupyter_ext.service.jobs import api_row, job_filter, summary_of
from jupyter_ext.service.models import JobListQuery, job_id_arg
from offload.jobs import index, tracking
from offload.spec import FINAL_STATES, JobState
from offload.store import has_output, layout, read_output

IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
MAX_TEXT = 2000  # characters of a cell's text output shown in compare
SORT_KEYS = ("created_at", "cost")  # besides any metric
DISTINCT_TTL_S = 2.0
_distinct_cache: dict[tuple[str, index.Filter], tuple[float, tuple[list[str], list[str]]]] = {}
_distinct_lock = threading.Lock()


def thumbnail(service: OffloadService, job_id: str) -> tuple[str, bytes] | None:
    """First image output of the executed notebook (cached once the job has ended)."""
    job_id_arg(job_id)
    if job_id in service.thumbnails:
        return service.thumbnails[job_id]
    try:
        nb = read_output(service.store, job_id)
    except ValueError:
        return None
    if nb is None:
        return None
    found = _first_image(nb)
    status = service.store.get_json(layout.job_key(job_id, "status.json"), None) or {}
    if status.get("state") in FINAL_STATES:
        service.thumbnails[job_id] = found
    return found


GALLERY_STATES = (*FINAL_STATES, JobState.RUNNING)  # a card has (or is getting) an executed notebook


def gallery(service: OffloadService, query: JobListQuery) -> dict[str, Any]:
    """One page of cards of executed notebooks, filtered and sorted in the index (newest first,
    or by cost or a metric); ``notebooks`` and ``metrics`` cover every card, for the filters."""
    states = tuple(s for s in GALLERY_STATES if not query.states or s in query.states)
    if not states:  # only active states asked for: they have no cards
        return {"cards": [], "notebooks": [], "metrics": [], "next_cursor": None, "total": 0}
    base = job_filter(service, query, kinds=("notebook",), states=states)
    where = index.Filter(states=base.states, notebooks=base.notebooks, kinds=base.kinds, include_null_kind=True)
    notebooks, metric_names = _distinct(service.store.url, where)
    order = None
    if query.sort and query.sort != "created_at":
        if query.sort not in SORT_KEYS and query.sort not in metric_names:
            raise ApiError(400, f"cannot sort by {query.sort!r}", field="sort",
                           hint=f"sort by created_at, cost or a metric: {', '.join(metric_names) or 'none logged yet'}")
        order = index.Order(key=query.sort, metric=query.sort not in SORT_KEYS, descending=query.order != "asc")
    elif query.sort == "created_at" and query.order == "asc":
        order = index.Order(descending=False)
    page = index.page(service.store.url, limit=query.limit, cursor=query.cursor, where=where, order=order)
    cards = [_card(service, api_row(service, r)) for r in page.rows]
    return {"cards": cards, "notebooks": notebooks, "metrics": metric_names, "next_cursor": page.next_cursor,
            "total": page.total}


def _distinct(store: str, where: index.Filter) -> tuple[list[str], list[str]]:
    """The filter and sort menus' choices (every card's notebooks and metric names): a scan of the
    index, so kept for ``DISTINCT_TTL_S``; paging through the gallery does not repeat it."""
    now = time.monotonic()
    with _distinct_lock:
        hit = _distinct_cache.get((store, where))
    if hit and now - hit[0] < DISTINCT_TTL_S:
        return hit[1]
    found = index.distinct(store, where)
    with _distinct_lock:
        if len(_distinct_cache) > 256:
            _distinct_cache.clear()
        _distinct_cache[(store, where)] = (now, found)
    return found


def _card(service: OffloadService, r: dict[str, Any]) -> dict[str, Any]:
    output = has_output(service.store, r["id"])
    return {
        "id": r["id"], "notebook": r.get("notebook"), "source_path": r.get("source_path"),
        "state": r.get("state"), "parameters": r.get("parameters") or {}, "metrics": r.get("metrics") or {},
        "cost": r.get("cost"), "created_at": r.get("created_at"), "finished_at": r.get("finished_at"),
        "backend": r.get("backend"), "has_output": output,
        "thumbnail": f"jobs/{r['id']}/thumbnail" if output and thumbnail(service, r["id"]) else None,
        "mlflow": _mlflow_run(service, r["id"]),
    }


def _mlflow_run(service: OffloadService, job_id: str) -> dict[str, Any] | None:
    """The job's MLflow run (its link on the card); read once per job and cached."""
    try:
        return tracking.job_run(service.store, job_id)
    except Exception:  # a card without its link is still a card
        return None


def compare(service: OffloadService, a: str, b: str) -> dict[str, Any]:
    ja, jb = service.job(a), service.job(b)
    sa, sb = summary_of(service, ja), summary_of(service, jb)
    pa, pb = ja.spec.parameters, jb.spec.parameters
    ma, mb = sa.get("metrics") or {}, sb.get("metrics") or {}
    params = [{"name": k, "a": pa.get(k), "b": pb.get(k), "a_default": k not in pa, "b_default": k not in pb,
               "same": (k in pa, pa.get(k)) == (k in pb, pb.get(k))} for k in sorted(set(pa) | set(pb))]
    metrics = [{"name": k, "a": ma.get(k), "b": mb.get(k), "delta": _delta(ma.get(k), mb.get(k))}
               for k in sorted(set(ma) | set(mb))]
    na, nb_ = ja.output_notebook, jb.output_notebook
    outputs = []
    if na is not None and nb_ is not None:
        cells_b = {c.get("id"): c for c in nb_.cells if c.get("id")}
        for c in na.cells:
            if c.cell_type != "code" or not c.get("id") or c.get("id") not in cells_b:
                continue
            ta, tb = _text_of(c), _text_of(cells_b[c["id"]])
            ia, ib = _first_image({"cells": [c]}), _first_image({"cells": [cells_b[c["id"]]]})
            if not (ta or tb or ia or ib):
                continue
            outputs.append({
                "cell_id": c["id"], "source": c.source[:300], "a_text": ta, "b_text": tb, "same": ta == tb,
                "a_image": _data_uri(ia), "b_image": _data_uri(ib),
            })
    return jsonable({"a": sa, "b": sb, "parameters": params, "metrics": metrics, "outputs": outputs})


def _delta(a: Any, b: Any) -> float | None:
    return b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None


def _first_image(nb: dict[str, Any]) -> tuple[str, bytes] | None:
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            for mime in IMAGE_MIMES:
                if mime in data:
                    raw = data[mime]
                    raw = "".join(raw) if isinstance(raw, list) else raw
                    if mime == "image/svg+xml":
                        return mime, raw.encode()
                    try:
                        return mime, base64.b64decode(raw)
                    except (ValueError, TypeError):
                        continue
    return None


def _data_uri(img: tuple[str, bytes] | None) -> str | None:
    if img is None:
        return None
    return f"data:{img[0]};base64,{base64.b64encode(img[1]).decode()}"


def _text_of(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []) or []:
        if out.get("output_type") == "stream":
            t = out.get("text", "")
        elif out.get("output_type") == "error":
            t = f"{out.get('ename')}: {out.get('evalue')}"
        else:
            data = out.get("data") or {}
            t = "" if any(m in data for m in IMAGE_MIMES) else data.get("text/plain", "")
        parts.append("".join(t) if isinstance(t, list) else str(t))
    text = "".join(parts)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n..."
