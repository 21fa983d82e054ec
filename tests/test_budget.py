"""Budgets, enforced before launch (offload/jobs/budget.py): a job's budget and the monthly caps,
refused before any Compute Engine call (the fake GCE's request log holds no insert), or the VM's
maxRunDuration cut to fit; the month's spend from the actual costs of jobs that ran.
"""

from __future__ import annotations

import json
import time

import pytest

from offload.cli import main
from offload.config import save_config, set_values
from offload.errors import BudgetExceeded, UsageError
from offload.jobs import budget, index
from offload.spec import JobSpec, Resources
from offload.store import Store, layout
from tests.fakes.gcs import binary

needs_gcs = pytest.mark.skipif(binary() is None, reason="fake-gcs-server binary missing")


def _inserts(gce) -> list[dict]:
    return gce.fake.requests_for("POST", "/instances$")


# a job's own budget --------------------------------------------------------------------------
@needs_gcs
def test_job_over_its_budget_is_refused_before_any_cloud_call(gce, notebook):
    nb = notebook("big.ipynb", ["print(1)"])
    with pytest.raises(BudgetExceeded) as err:
        gce.submit(nb, gpu="a100", max_runtime="2h", budget=5)  # a2-highgpu-1g $3.673/h x 2 h = $7.35
    e = err.value
    assert (e.budget, e.estimate, e.setting, e.field) == (5.0, pytest.approx(7.346), "budget", "budget")
    assert e.month_spend == 0.0
    assert "$7.35" in e.message and "$5.00" in e.message and "this month's spend so far $0.00" in e.message
    assert "--cap-runtime-to-budget" in e.hint and "--max-runtime to 81 min" in e.hint
    assert _inserts(gce) == []  # nothing reached Compute Engine
    assert gce.store.list_dirs(layout.JOBS) == []  # and nothing was written or uploaded for the job
    assert e.to_dict()["budget"] == 5.0 and e.http_status == 402


@needs_gcs
def test_cap_runtime_to_budget_cuts_max_run_duration(gce, notebook):
    nb = notebook("cap.ipynb", ["import time\ntime.sleep(600)"])
    job = gce.submit(nb, gpu="l4", max_runtime="4h", budget=1, cap_runtime_to_budget=True)  # $0.707/h
    try:
        fits = int(1 / 0.707 * 3600)  # 5091 s
        [ins] = _inserts(gce)
        assert ins["body"]["scheduling"]["maxRunDuration"] == {"seconds": str(fits)}
        assert job.spec.resources.max_runtime_s == fits
        checked = job.handle["budget"]
        assert checked["runtime_cut_from_s"] == 4 * 3600 and checked["capped_by"] == "budget"
        assert checked["estimate"] <= 1.0
        assert job.handle["cost_estimate"]["max_cost"] <= 1.0
    finally:
        job.cancel()


@needs_gcs
def test_a_budget_that_covers_less_than_a_billed_minute_is_refused_even_with_the_cap(gce, notebook):
    nb = notebook("tiny.ipynb", ["print(1)"])
    with pytest.raises(BudgetExceeded, match="does not cover one billed minute"):
        gce.submit(nb, gpu="a100", budget=0.01, cap_runtime_to_budget=True)  # a minute costs $0.06
    assert _inserts(gce) == []


@needs_gcs
def test_the_budget_default_comes_from_the_config(gce, notebook):
    save_config({"backend": "gce", "backends": {"gce": gce.options}, "budget": {"job": 2}})
    nb = notebook("d.ipynb", ["print(1)"])
    with pytest.raises(BudgetExceeded) as err:
        gce.submit(nb, gpu="l4", max_runtime="4h")
    assert err.value.budget == 2.0 and _inserts(gce) == []


# the monthly budget from actual costs ---------------------------------------------------------
@needs_gcs
def test_monthly_budget_counts_what_ended_jobs_actually_cost(gce, notebook, capsys):
    nb = notebook("m.ipynb", ["print('ran')"])
    first = gce.submit(nb, gpu="l4", max_runtime="1h")
    first.wait(timeout=300)
    assert first.state == "succeeded", first.status
    assert gce.fake.wait_gone(first.handle["name"], 60)
    actual = first.backend().job_cost(first.handle, first.status)["actual_cost"]
    assert actual and actual >= round(0.707 / 60, 4)  # the one-minute billing minimum
    spent = budget.month_spend()
    assert spent.actual == pytest.approx(actual) and spent.committed == 0
    assert spent.by_backend["gce"]["actual"] == pytest.approx(actual)
    assert spent.by_notebook["m.ipynb"]["jobs"] == 1
    # a monthly budget that the estimate alone fits, but not with what the first job cost
    monthly = round(0.707 + actual / 2, 4)
    save_config({"backend": "gce", "backends": {"gce": gce.options}, "budget": {"monthly": monthly}})
    inserts = len(_inserts(gce))
    with pytest.raises(BudgetExceeded) as err:
        gce.submit(nb, gpu="l4", max_runtime="1h")
    e = err.value
    assert e.setting == "budget.monthly" and e.month_spend == pytest.approx(actual)
    assert f"${actual:,.2f}" in e.message and "offload config set budget.monthly" in e.hint
    assert len(_inserts(gce)) == inserts
    # per backend, with the dotted config key the README documents
    assert main(["config", "set", "budget.monthly", "1000"]) == 0
    assert main(["config", "set", "backends.gce.budget_monthly", str(monthly)]) == 0
    with pytest.raises(BudgetExceeded) as err:
        gce.submit(nb, gpu="l4", max_runtime="1h")
    assert err.value.setting == "backends.gce.budget_monthly" and err.value.field == "backends.gce.budget_monthly"
    # offload spend shows it, per backend and per notebook
    capsys.readouterr()
    assert main(["spend", "--json", "--jobs"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["actual"] == pytest.approx(actual) and out["by_notebook"]["m.ipynb"]["jobs"] == 1
    assert out["budgets"] == {"budget.monthly": 1000.0, "backends.gce.budget_monthly": monthly}
    assert [j["id"] for j in out["jobs"]] == [first.id]
    assert main(["spend"]) == 0
    text = capsys.readouterr().out
    assert "gce" in text and "m.ipynb" in text and "budget.monthly $1,000.00" in text


# the month's spend, unit level (rows as launch_spec and the runner leave them) --------------------
def _job(store: Store, *, backend: str, created: float, state: str, finished: float | None,
         price: float, notebook: str = "a.ipynb") -> str:
    spec = JobSpec(id=f"j{int(created)}-{backend[:3]}", notebook=notebook, bundle_id="b", backend=backend,
                   resources=Resources(max_runtime_s=3600), created_at=created)
    store.put_json(layout.job_key(spec.id, "spec.json"), spec.to_dict())
    store.put_json(layout.job_key(spec.id, "handle.json"), {
        "created_at": created + 5, "price_per_hour": price, "delete_allowance_s": 30,
        "cost_estimate": {"max_cost": price}})
    status = {"state": state, "finished_at": finished}
    store.put_json(layout.job_key(spec.id, "status.json"), status)
    index.record(spec, store.url, status)
    return spec.id


def test_month_spend_counts_this_month_only_and_running_jobs_at_their_estimate(tmp_path, monkeypatch):
    store = Store(tmp_path.joinpath("s").as_uri())
    save_config({"backends": {"gce": {"project": "p", "credentials": "anonymous"}}})
    now = time.time()
    start = budget.month_start(now)
    last_month = _job(store, backend="gce", created=start - 7200, state="succeeded", finished=start - 3600, price=10)
    ended = _job(store, backend="gce", created=start + 10, state="succeeded", finished=start + 1785, price=2,
                 notebook="b.ipynb")
    running = _job(store, backend="gce", created=start + 20, state="running", finished=None, price=3)
    local = _job(store, backend="local", created=start + 30, state="succeeded", finished=start + 90, price=99)
    spend = budget.month_spend(now=now)
    ids = {j["id"] for j in spend.jobs}
    assert ids == {ended, running} and last_month not in ids and local not in ids
    assert spend.actual == pytest.approx(1.0)  # VM up 1770 s + the 30 s delete allowance, at $2/h
    assert spend.committed == pytest.approx(3.0) and spend.total == pytest.approx(4.0)
    assert spend.by_notebook["b.ipynb"]["actual"] == pytest.approx(1.0)
    # the ended job's cost is now in the index: a second pass reads no handle
    assert index.get(store.url, [ended])[ended]["cost"] == pytest.approx(1.0)
    store.delete(layout.job_key(ended, "handle.json"))
    assert budget.month_spend(now=now).actual == pytest.approx(1.0)


def test_budget_values_are_checked():
    assert budget.parse_budget("$20.50") == 20.5 and budget.parse_budget(None) is None
    for bad in ("lots", "-3", 0, True, "nan"):
        with pytest.raises(UsageError) as err:
            budget.parse_budget(bad)
        assert err.value.field == "budget"
    with pytest.raises(UsageError) as err:
        set_values(["budget.weekly", "3"])
    assert err.value.field == "budget.weekly" and "budget.monthly" in err.value.hint


def test_month_start_is_the_first_of_the_month_utc():
    t = time.mktime((2026, 12, 5, 3, 0, 0, 0, 0, 0)) - time.timezone
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(budget.month_start(t))) == "2026-12-01 00:00:00"


# over REST: the request fields, and the refusal the handler answers with (402 + the fields) ----
@needs_gcs
def test_rest_submit_with_a_budget_is_refused_before_any_cloud_call(gce, notebook, tmp_path):
    from jupyter_ext.service import ApiError, OffloadService
    from jupyter_ext.service import jobs as service_jobs
    from jupyter_ext.service.models import JobRequest

    nb = notebook("rest.ipynb", ["print(1)"])
    service = OffloadService(root_dir=str(nb.parent), store_url=gce.store.url, backends=["gce"],
                             backend_options={"gce": gce.options})
    body = {"path": "rest.ipynb", "backend": "gce", "gpu": "a100", "max_runtime": "2h", "budget": 5}
    with pytest.raises(BudgetExceeded) as err:
        service_jobs.submit(service, JobRequest.parse(service, body))
    payload = err.value.to_dict()
    assert payload["status"] == 402 and payload["field"] == "budget" and payload["estimate"] == pytest.approx(7.346)
    assert payload["month_spend"] == 0.0 and "--cap-runtime-to-budget" in payload["hint"]
    assert _inserts(gce) == []
    for field, value in (("budget", "lots"), ("budget", -1), ("stop_if_idle", "soon"), ("idle_threshold", 101),
                         ("wait_for_capacity", "0"), ("cap_runtime_to_budget", "yes")):
        with pytest.raises(ApiError) as bad:
            JobRequest.parse(service, {"path": "rest.ipynb", field: value})
        assert bad.value.http_status == 400 and bad.value.field == field, (field, bad.value)


# a sweep's budget: trials share it; once one is refused no more start, the running ones finish ---
@needs_gcs
def test_a_sweep_stops_launching_trials_at_its_budget(gce, notebook):
    pytest.importorskip("optuna")
    from offload.sweeps import sweep

    nb = notebook("sw.ipynb", ["import offload, time\ntime.sleep(3)\noffload.log_metric('acc', x)"], params="x = 0.0")
    # each trial: l4 for at most 1 h = $0.707 committed while it runs; $1.50 covers two at once
    res = sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="acc", trials=6, parallel=3,
                backend="gce", gpu="l4", max_runtime="1h", budget=1.5, backend_options=gce.options, store=gce.store,
                quiet=True)
    assert res.state == "stopped", (res.state, res.error)
    assert "budget reached" in res.error and "sweep" in res.error and "$1.50" in res.error
    assert len(_inserts(gce)) == 2  # the third trial was refused before any cloud call
    rows = res.trials()
    assert sum(r["state"] == "COMPLETE" for r in rows) == 2
    assert any("could not submit" in (r.get("error") or "") and "budget" in r["error"] for r in rows)
    assert res.record["budget"] == 1.5


def test_config_refuses_a_budget_that_is_not_an_amount():
    for bad in ("lots", "-5", "true"):
        with pytest.raises(UsageError) as err:
            set_values(["budget.monthly", bad])
        assert err.value.field == "budget.monthly"
    set_values(["budget.monthly", "0"])  # 0: no priced launch this month
