"""The sweep driver: Optuna ask/tell where every trial is a job of kind ``trial``.

One driver process owns a sweep at a time. It keeps up to ``parallel`` trial jobs running, feeds
their streamed intermediate metrics to the pruner, tells Optuna how each job ended, and writes
what it did to the store (``sweeps/<id>/driver.json``, ``sweeps/<id>/trials/<n>.json``) so the
CLI, the server and a later driver can see it. It can be killed at any moment: ``resume``
reconciles the study's RUNNING trials with their jobs, adopting live jobs, telling finished
ones, failing (and re-queueing) trials whose job never started or was lost, and cancelling jobs
that belong to no open trial. A trial is therefore never left RUNNING and never run twice.

``python -m offload.sweeps.driver STORE_URL SWEEP_ID`` is the detached driver
(:func:`offload.sweeps.control.spawn_driver` starts it). The store records it shares with the
readers are in :mod:`offload.sweeps.records`; packing (``per_gpu > 1``) in :mod:`offload.sweeps.packing`.
"""

from __future__ import annotations

import collections
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offload import jobs
from offload.backends import local_standby, procs
from offload.config import backend_options, default_backend
from offload.errors import BudgetExceeded, OffloadError, UsageError
from offload.jobs import recording
from offload.jobs.observe import observe
from offload.snapshot.deps import snapshot
from offload.spec import ACTIVE_STATES, FINAL_STATES, JobState
from offload.store import Store
from offload.store.layout import job_key, sweep_key
from offload.sweeps import space as sp
from offload.sweeps.packing import Packs, packs_trials
from offload.sweeps.records import (
    COMPLETED,
    FAILED,
    REQUEUED,
    RUNNING,
    STOPPED,
    STOPPING,
    SweepFailed,
    driver_info,
    find_sweep_jobs,
    job_error,
    make_storage,
    open_job,
    safe_state,
    summary_counts,
)

POLL_S = 0.25
# With every running trial a local runner process, the driver sleeps until one exits (a pidfd
# wakes it at once) or this long, to read intermediate metrics, the stop marker, the heartbeat.
LOCAL_POLL_S = 1.0
HEARTBEAT_S = 2.0
DEFAULT_FAILURE_STREAK = 5  # with no --max-failures: the first 5 trials all failing is a broken notebook


def _now() -> float:
    return time.time()


@dataclass
class Active:
    number: int
    trial: Any  # optuna.trial.Trial
    job: Any  # offload Job
    params: dict[str, Any]
    started: float
    reported: set[int] = field(default_factory=set)
    attempt: int = 0
    final_at: float | None = None
    runner_exited: bool = False  # its local runner process was seen exiting (not waited on again)

    def final_seen(self, now: float) -> float:
        """When the driver first saw this trial's job in a final state."""
        if self.final_at is None:
            self.final_at = now
        return self.final_at


class Driver:
    """Runs one sweep to completion (or until stopped) in this process."""

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        *,
        sampler: Any = None,
        pruner: Any = None,
        out: Any = None,
        poll_s: float = POLL_S,
    ):
        self.store = store
        self.id = sweep_id
        self.rec = store.get_json(sweep_key(sweep_id, "sweep.json"))
        self.space = sp.load_space(self.rec["space"])
        self.objectives: list[str] = self.rec["objectives"]
        self.directions: list[str] = self.rec["directions"]
        self.multi = len(self.objectives) > 1
        self.sampler_obj = sampler
        self.pruner_obj = pruner
        self.out = out if out is not None else sys.stderr
        self.quiet = out is False
        self.poll_s = poll_s
        self.active: dict[int, Active] = {}
        self.env_spec: Any = None
        self.packing = packs_trials(self.rec)
        self.packs = Packs(store, sweep_id, self.rec, say=self.say)
        self.money_left: str | None = None  # set when a trial was refused by a budget: launch no more
        self._tally: tuple[int, int] | None = None
        self.cancelling: list[Any] = []  # jobs asked to stop: the sweep ends when they have
        self.errors: collections.Counter[str] = collections.Counter()
        self.info: dict[str, Any] = {}
        self.last_beat = 0.0
        self.study = self._load_study()
        self.pruning = not isinstance(self.study.pruner, sp.optuna_module().pruners.NopPruner)
    # -- study ----------------------------------------------------------------------------
    def _load_study(self) -> Any:
        optuna = sp.optuna_module()
        n_obj = len(self.objectives)
        seed = self.rec.get("seed")
        prev = driver_info(self.store, self.id)
        if seed is not None and prev.get("runs"):
            seed = int(seed) + 7919 * int(prev["runs"])  # a resumed driver must not replay the same draws
        sampler = self.sampler_obj or sp.make_sampler(
            self.rec.get("sampler") or "tpe", seed=seed, space=self.space, n_objectives=n_obj
        )
        pruner = self.pruner_obj or sp.make_pruner(self.rec.get("pruner"), n_objectives=n_obj)
        return optuna.create_study(
            storage=make_storage(self.rec["storage"]),
            study_name=self.rec["study_name"],
            directions=self.directions,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"[sweep {self.id}] {text}", file=self.out, flush=True)

    # -- store records --------------------------------------------------------------------
    def write_info(self, **fields: Any) -> None:
        self.info.update(fields)
        self.info.update(
            pid=os.getpid(), host=socket.gethostname(), heartbeat=_now(), active=sorted(self.active)
        )
        self.store.put_json(sweep_key(self.id, "driver.json"), self.info)
        self.last_beat = _now()

    def write_trial(self, number: int, **fields: Any) -> None:
        key = sweep_key(self.id, f"trials/{number:06d}.json")
        rec = self.store.get_json(key, default={}) or {}
        rec.update(fields, number=number, updated=_now())
        self.store.put_json(key, rec)

    # -- counting ---------------------------------------------------------------------------
    def _trials(self) -> list[Any]:
        return self.study.get_trials(deepcopy=False)

    def tally(self) -> tuple[int, int]:
        """(finished ok = COMPLETE + PRUNED, counted failures); cached until the next tell."""
        if self._tally is None:
            TS = sp.optuna_module().trial.TrialState
            ok = fail = 0
            for t in self._trials():
                if t.state in (TS.COMPLETE, TS.PRUNED):
                    ok += 1
                elif t.state == TS.FAIL and not t.user_attrs.get(REQUEUED):
                    fail += 1
            self._tally = (ok, fail)
        return self._tally

    def counted(self) -> int:
        """Trials that used the budget: finished (not re-queued) plus running."""
        ok, fail = self.tally()
        return ok + fail + len(self.active)

    def failures(self) -> list[Any]:
        TS = sp.optuna_module().trial.TrialState
        return [t for t in self._trials() if t.state == TS.FAIL and not t.user_attrs.get(REQUEUED)]

    def budget(self) -> int:
        n = int(self.rec["trials"])
        if (self.rec.get("sampler") or "tpe").split(":")[0] == "grid":
            n = min(n, self.space.grid_size())
        return n

    # -- telling ----------------------------------------------------------------------------
    def tell(self, a: Active, state: str, *, values: list[float] | None = None, error: str | None = None,
             requeue: bool = False, retry: bool = False, outcome: str | None = None) -> None:
        TS = sp.optuna_module().trial.TrialState
        st = {"COMPLETE": TS.COMPLETE, "PRUNED": TS.PRUNED, "FAIL": TS.FAIL}[state]
        if error:
            self.study._storage.set_trial_user_attr(a.trial._trial_id, "error", error[:2000])
        if requeue:
            self.study._storage.set_trial_user_attr(a.trial._trial_id, REQUEUED, outcome or "re-queued")
            self.study.enqueue_trial(
                {k: v for k, v in a.params.items() if k in self.space.searched},
                user_attrs={"requeued_from": a.number, "attempt": a.attempt + (1 if retry else 0)},
                skip_if_exists=False,
            )
        try:
            if st == TS.COMPLETE:
                self.study.tell(a.trial, values if self.multi else values[0])
            else:
                self.study.tell(a.trial, state=st)
        except (RuntimeError, ValueError) as exc:  # already finished by another writer
            self.say(f"trial {a.number}: could not tell {state}: {exc}")
        self.active.pop(a.number, None)
        self._tally = None
        job_state = getattr(a.job, "state", None) if a.job is not None else None
        self.write_trial(
            a.number, state=state, values=values, error=error, requeued=bool(requeue), outcome=outcome,
            finished=_now(), job_state=job_state,
        )
        if state == "FAIL" and not requeue and error:
            self.errors[error.splitlines()[0][:300]] += 1
        shown = f"{values}" if values is not None else (error or outcome or "")
        self.say(f"trial {a.number} {state.lower()}{' (re-queued)' if requeue else ''}: {shown}")

    # -- submitting -------------------------------------------------------------------------
    def submit(self, trial: Any, params: dict[str, Any]) -> Any:
        sub = dict(self.rec.get("submit") or {})
        labels = {"sweep": self.id, "trial": str(trial.number), **(sub.pop("labels", None) or {})}
        if "backend_options" in sub:
            sub["backend_options_"] = sub.pop("backend_options")
        name = sub.get("backend") or default_backend()
        opts = dict(sub.get("backend_options_") or {})
        if name == "local" and not self.packing:
            if not (opts.get("max_jobs") or backend_options("local").get("max_jobs") or os.environ.get("OFFLOAD_LOCAL_MAX_JOBS")):
                # On the local backend slots are processes: let --parallel trials run at once.
                opts["max_jobs"] = max(int(self.rec["parallel"]), os.cpu_count() or 1)
            # Standby runners (imports done, kernel started) for the trials still to come after
            # this one, at most one per slot: the next trial starts without either wait. At most
            # one per core too: warming one up takes about a second of CPU, which on a machine
            # with more trials than cores would come out of the running trials.
            opts["standby"] = max(0, min(int(self.rec["parallel"]), os.cpu_count() or 1,
                                         self.budget() - self.counted() - 1))
            sub["backend_options_"] = opts
        if self.env_spec is None:  # every trial runs the same code: detect dependencies once
            nb = Path(self.rec["notebook"])
            self.env_spec = snapshot(nb, project_root=nb.parent)
        if self.packing:
            busy = collections.Counter(a.job.spec.labels.get("pack") for a in self.active.values() if a.job is not None)
            sub = self.packs.route(sub, labels, busy=busy, env_spec=self.env_spec)
        return jobs.submit(
            self.rec["notebook"], parameters=params, kind="trial", labels=labels, store=self.store,
            env_spec=self.env_spec, **sub,
        )

    def launch_one(self) -> None:
        trial = self.study.ask()
        params = self.space.suggest(trial)
        self.write_trial(trial.number, state="SUBMITTING", params=params, started=_now())
        a = Active(trial.number, trial, None, params, _now(), attempt=int(trial.user_attrs.get("attempt", 0)))
        try:
            job = self.submit(trial, params)
        except OffloadError as exc:
            self.active[trial.number] = a
            self.tell(a, "FAIL", error=f"could not submit: {exc}")
            if isinstance(exc, BudgetExceeded):  # the sweep's (or the month's) budget: running trials finish
                self.money_left = str(exc)
                self.say(f"no more trials: {exc}")
            if isinstance(exc, UsageError):  # bad input: every trial would fail the same way
                raise
            return
        a.job = job
        self.study._storage.set_trial_user_attr(trial._trial_id, "job_id", job.id)
        self.active[trial.number] = a
        self.write_trial(trial.number, state="RUNNING", job_id=job.id)
        self.say(f"trial {trial.number} -> job {job.id} {params}")

    # -- watching ---------------------------------------------------------------------------
    def check(self, a: Active) -> None:
        job = a.job
        state = job.refresh()["state"]
        observe(job, job.last_status)  # the trial's MLflow run (live metrics, artifacts at the end)
        metrics = list(job.metrics or []) if (self.pruning or state in FINAL_STATES) else []
        if self.pruning and state not in FINAL_STATES:
            name = self.objectives[0]
            for m in metrics:
                step = m.get("step")
                if m.get("name") != name or step is None or step in a.reported:
                    continue
                value = _as_float(m.get("value"))
                if value is None:
                    continue
                a.trial.report(value, int(step))
                a.reported.add(step)
                if a.trial.should_prune():
                    job.cancel()
                    self.cancelling.append(job)
                    self.tell(a, "PRUNED", outcome=f"pruned at step {step} ({name}={value:g})")
                    return
        if state not in FINAL_STATES:
            return
        if state == JobState.SUCCEEDED:
            last: dict[str, Any] = {}
            for m in metrics:
                last[m.get("name")] = m.get("value")
            if any(_as_float(last.get(n)) is None for n in self.objectives):
                # The runner writes result.json after its last flush: trust it over a metrics
                # file read a moment too early, and give it a few seconds to appear.
                result = self.store.get_json(job_key(job.id, "result.json"), default=None)
                if result is None and _now() - a.final_seen(_now()) < 10:
                    return
                last.update((result or {}).get("metrics") or {})
            values, missing = [], []
            for name in self.objectives:
                v = _as_float(last.get(name))
                if v is None:
                    missing.append(name)
                values.append(v)
            if missing:
                logged = ", ".join(sorted(k for k in last if k)) or "none"
                self.tell(
                    a, "FAIL",
                    error=f"the notebook did not log {', '.join(missing)} as a finite number "
                    f"(logged: {logged}); call offload.log_metric({missing[0]!r}, value)",
                )
            else:
                self.tell(a, "COMPLETE", values=values)
        elif state == JobState.FAILED:
            self.tell(a, "FAIL", error=job_error(job))
        elif state == JobState.CANCELLED:
            self.tell(a, "FAIL", error="the trial's job was cancelled")
        else:  # preempted / lost: the point deserves another run, once
            if a.attempt < int(self.rec.get("retries", 1)):
                self.tell(a, "FAIL", error=f"job {state}: {job_error(job)}", requeue=True, retry=True,
                          outcome=f"job {state}, re-queued")
            else:
                self.tell(a, "FAIL", error=f"job {state}: {job_error(job)}")

    # -- reconciliation ---------------------------------------------------------------------
    def reconcile(self) -> None:
        """Match the study's open trials with jobs after a restart; cancel jobs nobody owns."""
        optuna = sp.optuna_module()
        TS = optuna.trial.TrialState
        jobs_by_trial = find_sweep_jobs(self.store, self.id)
        trials = {t.number: t for t in self._trials()}
        for number, frozen in sorted(trials.items()):
            if frozen.state != TS.RUNNING or number in self.active:
                continue
            ids = list(dict.fromkeys(([frozen.user_attrs["job_id"]] if frozen.user_attrs.get("job_id") else [])
                                     + jobs_by_trial.get(number, [])))
            trial = optuna.trial.Trial(self.study, frozen._trial_id)
            params = {**frozen.params, **self.space.fixed}
            a = Active(number, trial, None, params, frozen.datetime_start.timestamp() if frozen.datetime_start else _now())
            a.reported = set(frozen.intermediate_values)
            a.attempt = int(frozen.user_attrs.get("attempt", 0))
            if not ids:
                self.active[number] = a
                self.tell(a, "FAIL", error="the driver stopped before the trial's job was submitted",
                          requeue=True, outcome="never submitted, re-queued")
                continue
            a.job = open_job(ids[0], self.store)
            if self._never_launched(a.job):
                self.active[number] = a
                self.tell(a, "FAIL", error="the driver stopped while submitting the trial's job",
                          requeue=True, outcome="never launched, re-queued")
                continue
            for extra in ids[1:]:  # a duplicate submit for one trial: keep the first, stop the rest
                self._cancel_job(extra, "duplicate job for one trial")
            if frozen.user_attrs.get("job_id") != a.job.id:
                self.study._storage.set_trial_user_attr(frozen._trial_id, "job_id", a.job.id)
            self.active[number] = a
            self.write_trial(number, state="RUNNING", job_id=a.job.id, params=params)
            self.say(f"trial {number}: adopted job {a.job.id}")
            self.check(a)
        # Jobs whose trial is already finished (or unknown to the study) must not keep running.
        for number, ids in jobs_by_trial.items():
            owner = self.active.get(number)
            for job_id in ids:
                if owner is not None and owner.job is not None and owner.job.id == job_id:
                    continue
                j = open_job(job_id, self.store)
                if j.state in ACTIVE_STATES:
                    self._cancel_job(job_id, f"orphan of trial {number}")

    def _never_launched(self, job: Any, *, grace_s: float = 20.0) -> bool:
        """A job with neither a launch handle nor a runner status was cut off mid-submit.

        The previous driver died between writing the spec and recording the launch. The runner
        may still be starting, so give it ``grace_s`` to write its status; if it does not, the
        job is cancelled (the marker stops a late runner at once) and closed as cancelled.
        """
        end = _now() + grace_s
        while job.handle is None and not self.store.exists(job_key(job.id, "status.json")):
            if _now() > end:
                self.store.put_text(job_key(job.id, "cancel"), str(_now()))
                job.conclude(JobState.CANCELLED, "never launched: the sweep driver stopped during submit")
                self.say(f"job {job.id} was never launched; closed it")
                return True
            time.sleep(0.5)  # job.handle is read again while it is None
        return False

    def _cancel_job(self, job_id: str, why: str) -> None:
        try:
            j = open_job(job_id, self.store)
            if self._never_launched(j):
                return
            self.cancelling.append(j)
            j.cancel()
            self.say(f"cancelled job {job_id}: {why}")
        except OffloadError as exc:
            self.say(f"could not cancel job {job_id} ({why}): {exc}")

    # -- stopping ---------------------------------------------------------------------------
    def stop_all(self, why: str, *, requeue: bool) -> None:
        for a in list(self.active.values()):
            if a.job is not None:
                try:
                    a.job.cancel()
                    self.cancelling.append(a.job)
                except OffloadError as exc:
                    self.say(f"could not cancel job {a.job.id}: {exc}")
            self.tell(a, "FAIL", error=why, requeue=requeue, outcome=why)

    def wait_cancelled(self, *, timeout: float = 60.0) -> None:
        """A sweep is over only when the jobs it cancelled have stopped (no spend after 'done')."""
        end = _now() + timeout
        pending = list(self.cancelling)
        while pending and _now() < end:
            pending = [j for j in pending if safe_state(j) not in FINAL_STATES]
            if pending:
                time.sleep(0.2)
        for j in pending:
            self.say(f"job {j.id} is still stopping")
        self.cancelling = []

    def common_error(self) -> str:
        if self.errors:
            text, n = self.errors.most_common(1)[0]
            return f"{n} of {sum(self.errors.values())} failed trials: {text}"
        fails = self.failures()
        errs = collections.Counter(str(t.user_attrs.get("error", "unknown error")).splitlines()[0] for t in fails)
        if errs:
            text, n = errs.most_common(1)[0]
            return f"{n} of {len(fails)} failed trials: {text}"
        return "unknown error"

    def too_many_failures(self) -> bool:
        ok, fails = self.tally()
        limit = self.rec.get("max_failures")
        if limit is not None:
            return fails >= int(limit)
        return not ok and fails >= DEFAULT_FAILURE_STREAK

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        prev = driver_info(self.store, self.id)
        self.info = {k: v for k, v in prev.items() if k in ("started_at", "runs")}
        self.info.setdefault("started_at", _now())
        self.info["runs"] = int(self.info.get("runs", 0)) + 1
        self.write_info(state=RUNNING, error=None, finished_at=None)
        recording.sweep_started(self.store, self.id, self.rec, say=self.say)  # MLflow parent run, webhook
        try:
            self._enqueue_initial()
            if self.packing:
                self.packs.adopt()
            self.reconcile()
            state, error = self._loop()
        except KeyboardInterrupt:
            self.say("interrupted: cancelling running trials (resume with `offload sweep resume`)")
            self.stop_all("sweep interrupted; re-run on resume", requeue=True)
            state, error = STOPPED, None
        except SweepFailed as exc:
            state, error = FAILED, str(exc)
        except OffloadError as exc:
            self.stop_all(f"sweep failed: {exc}", requeue=False)
            state, error = FAILED, str(exc)
        except Exception as exc:  # a driver bug must not leave trials RUNNING either
            self.say(traceback.format_exc())
            self.stop_all(f"driver error: {exc}", requeue=True)
            state, error = FAILED, f"driver error: {exc}"
        self.packs.release()
        local_standby.release(self.store.url, self.id)  # no more trials: the standbys exit with their kernels
        self.wait_cancelled()
        self.write_info(state=state, error=error, finished_at=_now(), **summary_counts(self.study))
        self.say(f"{state}{': ' + error if error else ''}")
        recording.sweep_ended(self.store, self.id, self.rec, state=state, error=error,
                              counts=summary_counts(self.study), study=self.study, say=self.say)
        return dict(self.info)

    def _enqueue_initial(self) -> None:
        if self.info["runs"] != 1:
            return
        for point in self.rec.get("enqueue") or []:
            self.study.enqueue_trial(point, skip_if_exists=True)

    def stop_requested(self) -> bool:
        """The client's ``stop`` marker (written by sweep_stop, removed by sweep_resume)."""
        return self.store.exists(sweep_key(self.id, "stop"))

    def _loop(self) -> tuple[str, str | None]:
        while True:
            if self.stop_requested():
                self.write_info(state=STOPPING)
                self.stop_all("sweep stopped; re-run on resume", requeue=True)
                return STOPPED, None
            for a in list(self.active.values()):
                try:
                    self.check(a)
                except OffloadError as exc:
                    self.say(f"trial {a.number}: cannot read job {a.job.id}: {exc}")
            if self.too_many_failures():
                error = self.common_error()
                self.stop_all("sweep stopped after too many failures", requeue=False)
                raise SweepFailed(
                    f"sweep {self.id} stopped: {error}",
                    hint="fix the notebook (see `offload sweep show` and the failed job's logs), then `offload sweep resume`",
                )
            while len(self.active) < int(self.rec["parallel"]) and self.counted() < self.budget() and not self.money_left:
                if self.stop_requested():  # a stop is honoured between two launches, not after all
                    break
                self.launch_one()
            if not self.active and self.counted() >= self.budget():
                return COMPLETED, None
            if not self.active and self.money_left:
                return STOPPED, f"budget reached: {self.money_left}"
            if _now() - self.last_beat > HEARTBEAT_S:
                self.write_info(**summary_counts(self.study))
            self.wait()

    def wait(self) -> None:
        """Until the next look: ``poll_s``; when every running trial is a local runner process,
        until one exits (woken at once, no polling) or :data:`LOCAL_POLL_S`."""
        host = socket.gethostname()
        pids: dict[int, Active] = {}
        for a in self.active.values():
            handle = a.job.handle if a.job is not None and not a.runner_exited else None
            if handle and a.job.spec.backend == "local" and handle.get("host") == host and handle.get("pid"):
                pids[int(handle["pid"])] = a
        timeout = LOCAL_POLL_S if pids and len(pids) == len(self.active) else self.poll_s
        for pid in procs.wait_exits(list(pids), max(timeout, self.poll_s)):
            pids[pid].runner_exited = True


def _as_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def main(argv: list[str] | None = None) -> int:
    """``python -m offload.sweeps.driver STORE_URL SWEEP_ID``: a detached driver."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m offload.sweeps.driver STORE_URL SWEEP_ID", file=sys.stderr)
        return 2
    store = Store(args[0])
    try:
        driver = Driver(store, args[1], out=sys.stdout)
    except Exception as exc:  # say so in the store: a sweep must never wait on a driver that is gone
        traceback.print_exc()
        prev = driver_info(store, args[1])
        store.put_json(sweep_key(args[1], "driver.json"), {
            **prev, "state": FAILED, "error": f"the sweep driver could not start: {type(exc).__name__}: {exc}",
            "finished_at": _now(), "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": _now(),
        })
        return 1
    info = driver.run()
    return 0 if info.get("state") in (COMPLETED, STOPPED) else 1


if __name__ == "__main__":
    sys.exit(main())
