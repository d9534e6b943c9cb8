"""`redline train`, `redline eval` and `redline adapters`: the trainer's commands (torch is imported here only)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import click

from redline.config import Config, load_config
from redline.errors import ConfigError, NotFound
from redline.records import utc_now


def _model(config: Config, override: str | None) -> str:
    model = override or config.model
    if not model:
        raise ConfigError("no base model configured", fix="set `model` in [tool.redline] or pass --model")
    return model


def _quiet_loading() -> None:
    """Check the training extra is installed, and silence transformers' per-load weight bars (ours is enough)."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        from transformers.utils import logging as hf_logging
    except ModuleNotFoundError as exc:
        raise click.ClickException(f"this command needs {exc.name} — run `pip install 'redline[train]'`") from None

    hf_logging.disable_progress_bar()


def _train_config(config: Config, **overrides: Any) -> Any:
    from trainer.config import TrainConfig

    return TrainConfig.from_dict(dict(config.train), **overrides)


@click.command("train")
@click.option("--model", help="Base model: a local directory or a hub id already in the local cache.")
@click.option("--method", type=click.Choice(["self-distill", "sft-revision", "sft-edit", "scalar"]),
              help="Training method (default: self-distill, or `method` in [tool.redline.train]).")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--dry-run", is_flag=True, help="Print what would be trained and one rendered context; train nothing.")
def train(model: str | None, method: str | None, max_steps: int | None, dry_run: bool) -> None:
    """Distil the queued feedback into a new adapter; promote it only if the evaluation gate passes."""
    from redline.queue import open_store
    from trainer.data import examples_from_store

    config = load_config()
    model_ref = _model(config, model)
    tcfg = _train_config(config, method=method, max_steps=max_steps)
    _quiet_loading()
    store = open_store(config)
    try:
        if dry_run:
            _dry_run(model_ref, examples_from_store(store, split="train", include_passed=tcfg.use_passed_anchors),
                     tcfg)
            return
        _train_and_register(config, store, model_ref, tcfg)
    finally:
        store.close()


def _dry_run(model_ref: str, examples: list[Any], tcfg: Any) -> None:
    from trainer.api import plan_training

    plan = plan_training(model_ref, examples, tcfg)
    for key in ("method", "hindsight", "records", "trainable", "skipped", "anchors", "truncated",
                "student_prompt_tokens", "teacher_prompt_tokens", "completion_tokens"):
        click.echo(f"{key:>22}: {plan[key]}")
    if "example_student" in plan:
        click.echo("\n--- student context (prompt + attempt) ---\n" + plan["example_student"])
        click.echo("\n--- teacher context (prompt + hindsight + the same attempt ids) ---\n" + plan["example_teacher"])


def _train_and_register(config: Config, store: Any, model_ref: str, tcfg: Any) -> None:
    from trainer.api import train_adapter
    from trainer.data import examples_from_store
    from trainer.gate import GateThresholds, evaluate_gate
    from trainer.registry import AdapterRegistry

    claim = store.claim("redline-train")
    try:
        examples = examples_from_store(store, split="train", ids=claim.generation_ids)
        if not examples:
            click.echo("nothing new to train on (no unclaimed training records with feedback)")
            store.release(claim.token)
            return
        registry = AdapterRegistry(config.adapters_dir)
        parent = registry.current()
        # A stable work directory per (records, settings): a run killed mid-way resumes from its checkpoint.
        key = hashlib.sha256(json.dumps([sorted(claim.generation_ids), tcfg.to_dict(), parent]).encode())
        work = config.adapters_dir / "work" / key.hexdigest()[:16]
        tcfg = _with_checkpoints(tcfg)
        result = train_adapter(model_ref, examples, work, tcfg, parent_version=parent,
                               init_adapter=registry.current_path())
        hs = result.metrics.get("hindsight") or {}
        if hs:
            click.echo(f"hindsight teacher: failed attempts {hs['student_logp']:.3f} → {hs['teacher_logp']:.3f} "
                       f"nats/token under feedback (divergence {hs['divergence']:.4f})")
        heldout = examples_from_store(store, split="heldout")
        report = evaluate_gate(model_ref, work, heldout, human_texts=human_code(config.repo_root, tcfg),
                               thresholds=GateThresholds(max_ppl_increase=tcfg.gate_max_ppl_increase),
                               baseline_adapter=registry.current_path())
        version = registry.add(work, {"gate": report.to_dict(), "parent_version": parent})
        store.ack(claim.token)
    except BaseException:
        store.release(claim.token)
        raise
    shutil.rmtree(work, ignore_errors=True)
    click.echo(report.table())
    store.set_meta("last_training", {"at": utc_now(), "version": version, "records": result.pairs,
                                     "gate_passed": report.passed})
    if report.passed:
        registry.promote(version)
        click.echo(f"adapter {version} trained on {result.pairs} records and promoted")
    else:
        click.echo(f"adapter {version} kept but NOT promoted; `redline adapters promote {version}` to override")
    _publish_current(store, registry)


def _publish_current(store: Any, registry: Any) -> None:
    """Mirror the served adapter into the queue's meta, where `redline status` and the language server read it."""
    current = registry.current()
    gate = (registry.meta(current).get("gate") or {}) if current else {}
    store.set_meta("current_adapter", None if current is None else {
        "version": current, "path": str(registry.path(current)), "gate_passed": gate.get("passed")})


def _with_checkpoints(tcfg: Any) -> Any:
    from trainer.config import TrainConfig

    if tcfg.checkpoint_every:
        return tcfg
    return TrainConfig.from_dict({**tcfg.to_dict(), "checkpoint_every": 50})


@click.command("eval")
@click.argument("version", required=False)
@click.option("--model", help="Base model (default: the configured one).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_(version: str | None, model: str | None, as_json: bool) -> None:
    """Run the evaluation gate on VERSION (default: the current adapter, else the newest)."""
    from redline.queue import open_store
    from trainer.data import examples_from_store
    from trainer.gate import GateThresholds, evaluate_gate
    from trainer.registry import AdapterRegistry

    config = load_config()
    _quiet_loading()
    registry = AdapterRegistry(config.adapters_dir)
    version = version or registry.current() or (registry.versions() or [None])[-1]
    if version is None:
        raise NotFound("no adapter for this repo yet", fix="run `redline train`")
    path = registry.path(version)
    store = open_store(config)
    try:
        heldout = examples_from_store(store, split="heldout")
    finally:
        store.close()
    tcfg = _train_config(config)
    parent = registry.meta(version).get("parent_version")
    baseline = registry.path(parent) if parent in registry.versions() else None
    report = evaluate_gate(_model(config, model), path, heldout, human_texts=human_code(config.repo_root, tcfg),
                           thresholds=GateThresholds(max_ppl_increase=tcfg.gate_max_ppl_increase),
                           baseline_adapter=baseline)
    if as_json:
        click.echo(json.dumps({"version": version, **report.to_dict()}, indent=2))
    else:
        click.echo(f"adapter {version}\n" + report.table())
    if not report.passed:
        raise SystemExit(1)


@click.group("adapters")
def adapters() -> None:
    """List, promote or roll back this repo's adapters."""


@adapters.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
def list_(as_json: bool) -> None:
    """Adapter versions, oldest first; * marks the one being served."""
    from trainer.registry import AdapterRegistry

    rows = AdapterRegistry(load_config().adapters_dir).table()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no adapters yet — run `redline train`")
        return
    for r in rows:
        gate = {True: "gate passed", False: "gate refused", None: "no gate"}[r["gate_passed"]]
        click.echo(f"{'*' if r['current'] else ' '} {r['version']}  {r['created_at'] or '':<24} {r['method'] or '':<13}"
                   f" {r['records']:>5} records  {gate}  parent {r['parent_version'] or '-'}")


@adapters.command("promote")
@click.argument("version")
def promote(version: str) -> None:
    """Serve VERSION from now on."""
    from trainer.registry import AdapterRegistry

    config = load_config()
    registry = AdapterRegistry(config.adapters_dir)
    registry.promote(version)
    _publish_with_store(config, registry)
    click.echo(f"{version} is now current")


@adapters.command("rollback")
def rollback() -> None:
    """Serve the previously promoted adapter again (or the base model)."""
    from trainer.registry import AdapterRegistry

    config = load_config()
    registry = AdapterRegistry(config.adapters_dir)
    previous = registry.rollback()
    _publish_with_store(config, registry)
    click.echo(f"{previous} is now current" if previous else "no adapter is current; serving the base model")


def _publish_with_store(config: Config, registry: Any) -> None:
    from redline.queue import open_store

    store = open_store(config)
    try:
        _publish_current(store, registry)
    finally:
        store.close()


def human_code(repo_root: Path, tcfg: Any) -> list[str]:
    """The gate's sample of the team's own code, chosen by the current `gate_human_code` setting."""
    from trainer.gate import default_human_texts

    return default_human_texts(repo_root, 16, tcfg.gate_human_code)
