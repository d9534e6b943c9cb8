"""One training run for one repository: claim → examples → train → gate → register → promote → publish.

`redline train`, the daemon's child process and the demo all call `run_training`; it returns a typed `RunReport`
and writes the repository's training status (`redline.status`), so every caller and every reader sees the same
outcome. The claim is released on any exception, on Ctrl-C and on SIGTERM, so a killed run loses nothing queued.

Launched as several processes (`accelerate launch … -m redline train`, docs/trainer.md), rank 0 runs all of
this and hands its records and settings to the other ranks, which only train their share of each step
(`follow_training`): one claim, one adapter, one gate, one report.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redline.adapter_store import registry_for
from redline.config import Config
from redline.errors import ConfigError, RedlineError
from redline.evidence import Judge
from redline.queue import Store
from redline.queue.claims import LEASE_S, Heartbeat
from redline.records import utc_now
from redline.status import LastTraining, publish_adapter, write_last
from redline.trainer import distributed
from redline.trainer.config import TrainConfig
from redline.trainer.data import examples_from_store, top_up_heldout
from redline.trainer.errors import NothingToLearn
from redline.trainer.feedback_text import is_accepted
from redline.trainer.gate import GateReport, GateThresholds, evaluate_gate
from redline.trainer.human_code import default_human_texts
from redline.trainer.loop import StepCallback, train
from redline.trainer.probe import ProbeReport

#: the owner name the queue records on a claim
CLAIM_OWNER = "redline-train"


@dataclass(frozen=True)
class RunReport:
    """What one run did. `version` is None when there was nothing to train on."""

    version: str | None
    promoted: bool
    #: why it was not promoted (the gate's reasons), or why nothing was trained; None when promoted
    reason: str | None
    gate: GateReport | None = None
    #: generations claimed, those trained on, training sequences built (attempts and teacher rewrites), held-out
    #: records the gate judged on
    records: int = 0
    trained: int = 0
    pairs: int = 0
    heldout: int = 0
    #: the hindsight check: failed attempts' log-prob under the student and the teacher
    hindsight: dict[str, float] = field(default_factory=dict)
    #: seconds per phase: train, gate, total
    timings: dict[str, float] = field(default_factory=dict)
    #: the hindsight probe's one line (what the model fixes when shown the feedback), when it ran
    probe: str | None = None
    #: a rank other than 0 of a launched run: it trained its share of rank 0's run and wrote nothing
    follower: bool = False
    #: the newest records with a red line moved to the held-out split so the gate has enough to decide by
    held_out_now: int = 0


def model_for(config: Config, override: str | None = None) -> str:
    """The base model a run uses: `override`, else the configured `model`."""
    model = override or config.model
    if not model:
        raise ConfigError("no base model configured", fix="set `model` in [tool.redline] or pass --model")
    return model


def train_config_for(config: Config, **overrides: Any) -> TrainConfig:
    """The repository's `[tool.redline.train]` table as a validated `TrainConfig` (None overrides are ignored)."""
    return TrainConfig.from_dict(dict(config.train), **overrides)


def human_code(repo_root: Path, tcfg: TrainConfig) -> list[str]:
    """The gate's sample of the team's own code, chosen by the `gate_human_code` setting."""
    return default_human_texts(repo_root, 16, tcfg.gate_human_code)


def run_training(config: Config, store: Store, *, model: str, train_config: TrainConfig, progress: bool = True,
                 device: str | None = None, on_step: StepCallback | None = None,
                 claim_owner: str = CLAIM_OWNER, on_probe: Callable[[ProbeReport], None] | None = None
                 ) -> RunReport:
    """Train on every unclaimed record with feedback, gate the adapter, register it, promote it if the gate passes.

    A stable work directory per (records, settings, parent) keeps checkpoints, so a run killed mid-way resumes
    where it stopped when started again on the same records. Any failure is recorded as the last training's
    result before it is raised. `claim_owner` names the claim, so a supervisor can release it after a SIGKILL."""
    group = distributed.current()
    if group is not None and not group.main:
        return follow_training(config, group, model=model, device=device)
    started = time.perf_counter()
    # the claim lasts while this process runs (checked by pid on this host) and while the heartbeat renews it (for
    # a trainer on another machine of a team queue, whose pid nobody can check): a run cut off longer than
    # LEASE_S loses it, and its `ack` raises ClaimLost before anything is promoted
    claim = store.claim(claim_owner, stale_after_s=LEASE_S)
    try:
        with _sigterm_raises(), Heartbeat(store, claim.token):
            examples = examples_from_store(store, split="train", ids=claim.generation_ids)
            nothing = None
            if not examples:
                nothing = "nothing new to train on (no unclaimed training records with feedback)"
            elif all(is_accepted(ex.feedback) for ex in examples):
                nothing = (f"nothing to learn from yet: all {len(examples)} new records were accepted as written "
                           "(they stay queued, to anchor the first run that has mistakes to learn from)")
            if nothing:
                if group is not None:
                    group.share(None)
                store.release(claim.token)
                report = RunReport(None, False, nothing, timings={"total": time.perf_counter() - started})
                write_last(store, LastTraining(utc_now(), "nothing", report.reason))
                return report
            examples, held_out_now = top_up_heldout(store, examples, GateThresholds().min_records,
                                                    claimed=claim.generation_ids)
            registry = registry_for(config)
            parent = registry.current()
            tcfg = train_config if train_config.checkpoint_every else TrainConfig.from_dict(
                {**train_config.to_dict(), "checkpoint_every": 50})
            key = hashlib.sha256(json.dumps([sorted(claim.generation_ids), tcfg.to_dict(), parent]).encode())
            work = config.adapters_dir / "work" / key.hexdigest()[:16]
            if group is not None:
                group.share((examples, work, tcfg, parent, registry.current_path()))
            probed: list[ProbeReport] = []

            def heard(report: ProbeReport) -> None:
                probed.append(report)
                if on_probe is not None:
                    on_probe(report)

            try:
                with Judge(config.repo_root) as judge:
                    result = train(model, examples, work, tcfg, progress=progress, on_step=on_step,
                                   parent_version=parent, init_adapter=registry.current_path(), device=device,
                                   judge=judge, on_probe=heard)
            except NothingToLearn as exc:  # nothing trained: the records stay queued for a model that can use them
                store.release(claim.token)
                line = probed[-1].line() if probed else exc.one_line()
                write_last(store, LastTraining(utc_now(), "nothing", exc.one_line(), probe=line))
                return RunReport(None, False, exc.one_line(), probe=line,
                                 timings={"total": time.perf_counter() - started})
            finally:
                distributed.done(group)  # the other ranks are through: nothing after training is collective
            trained = time.perf_counter()
            heldout = examples_from_store(store, split="heldout")
            gate = evaluate_gate(model, work, heldout, human_texts=human_code(config.repo_root, tcfg),
                                 repo_root=config.repo_root,
                                 thresholds=GateThresholds(max_ppl_increase=tcfg.gate_max_ppl_increase),
                                 baseline_adapter=registry.current_path(), device=device)
            version = registry.add(work, {"gate": gate.to_dict(), "parent_version": parent},
                                   named=lambda v: {"gate_summary": gate.summary(v)})
            store.ack(claim.token)
    except BaseException as exc:
        store.release(claim.token)
        reason = exc.one_line() if isinstance(exc, RedlineError) else (
            "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else f"{type(exc).__name__}: {exc}")
        try:
            write_last(store, LastTraining(utc_now(), "failed", reason))
        except RedlineError:
            pass  # a queue that cannot take the note (full disk) must not hide the original error
        raise
    shutil.rmtree(work, ignore_errors=True)
    if gate.passed:
        registry.promote(version)
    why = None if gate.passed else f"gate {gate.verdict}: " + "; ".join(gate.reasons)
    trained_on = result.examples - result.skipped
    probe = (result.metrics.get("probe") or {}).get("line")
    write_last(store, LastTraining(utc_now(), "promoted" if gate.passed else "refused", why, version, trained_on,
                                   probe=probe))
    publish_adapter(store, registry)
    done = time.perf_counter()
    return RunReport(version, gate.passed, why, gate, len(claim.generation_ids), trained_on, result.pairs, len(heldout),
                     dict(result.metrics.get("hindsight") or {}),
                     {"train": trained - started, "gate": done - trained, "total": done - started}, probe=probe,
                     held_out_now=held_out_now)


def follow_training(config: Config, group: distributed.Group, *, model: str, device: str | None = None) -> RunReport:
    """A rank other than 0: train this rank's share of every step on rank 0's records with rank 0's settings
    (the same probe, the same steps). Rank 0 writes the adapter, gates, registers and reports."""
    job = group.share(None)
    if job is None:
        return RunReport(None, False, "nothing to train (rank 0 found no records)", follower=True)
    examples, work, tcfg, parent, init = job
    try:
        with Judge(config.repo_root) as judge:
            result = train(model, examples, work, tcfg, progress=False, parent_version=parent, init_adapter=init,
                           device=device, judge=judge)
    except NothingToLearn as exc:
        return RunReport(None, False, exc.one_line(), follower=True)
    finally:
        distributed.done(group)
    return RunReport(None, False, f"rank {group.rank} of {group.world}: trained its share", records=len(examples),
                     trained=result.examples - result.skipped, pairs=result.pairs, follower=True)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the run, so `kill` releases the claim like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
