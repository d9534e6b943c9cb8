"""`redline train`, `redline eval` and `redline adapters`: the trainer's commands (torch is imported here only)."""

from __future__ import annotations

import json
from typing import Any

import click

from redline.config import Config, load_config
from redline.errors import NotFound
from redline.trainer.config import METHODS


def _quiet_loading() -> None:
    """Check the training extra is installed, and silence transformers' per-load weight bars (ours is enough)."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        from transformers.utils import logging as hf_logging
    except ModuleNotFoundError as exc:
        raise click.ClickException(f"this command needs {exc.name} — run `pip install 'redline[train]'`") from None

    hf_logging.disable_progress_bar()


@click.command("train")
@click.option("--model", help="Base model: a local directory or a hub id already in the local cache.")
@click.option("--method", type=click.Choice(METHODS),
              help="Training method (default: self-distill, or `method` in [tool.redline.train]).")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--dry-run", is_flag=True, help="Print what would be trained and one rendered context; train nothing.")
def train(model: str | None, method: str | None, max_steps: int | None, dry_run: bool) -> None:
    """Distil the queued feedback into a new adapter; promote it only if the evaluation gate passes."""
    from redline.queue import open_store
    from redline.trainer.data import examples_from_store
    from redline.trainer.run import model_for, run_training, train_config_for

    config = load_config()
    model_ref = model_for(config, model)
    tcfg = train_config_for(config, method=method, max_steps=max_steps)
    _quiet_loading()
    store = open_store(config)
    try:
        if dry_run:
            _dry_run(model_ref, examples_from_store(store, split="train", include_passed=tcfg.use_passed_anchors),
                     tcfg)
            return
        report = run_training(config, store, model=model_ref, train_config=tcfg,
                              on_probe=lambda probe: click.echo(probe.line()))
        _print_report(report)
    finally:
        store.close()
    if report.promoted:
        _tell_server(config)


def _dry_run(model_ref: str, examples: list[Any], tcfg: Any) -> None:
    from redline.trainer.api import plan_training

    plan = plan_training(model_ref, examples, tcfg)
    for key in ("method", "hindsight", "records", "trainable", "skipped", "anchors", "accepted_left_out",
                "truncated", "teacher_rewrites", "student_prompt_tokens", "teacher_prompt_tokens", "completion_tokens"):
        click.echo(f"{key:>22}: {plan[key]}")
    if "example_student" in plan:
        click.echo("\n--- student context (prompt + attempt) ---\n" + plan["example_student"])
        click.echo("\n--- teacher context (prompt + hindsight + the same attempt ids) ---\n" + plan["example_teacher"])


def _print_report(report: Any) -> None:
    if report.follower:  # another rank of a launched run: rank 0 prints the run's report
        return
    if report.version is None:
        click.echo(report.reason)
        return
    hs = report.hindsight
    if hs:
        click.echo(f"hindsight teacher: failed attempts {hs['student_logp']:.3f} → {hs['teacher_logp']:.3f} "
                   f"nats/token under feedback (divergence {hs['divergence']:.4f})")
    if report.held_out_now:
        click.echo(f"held out the {report.held_out_now} newest records with a red line, so the gate has enough to "
                   "decide by (they are judged, never trained on)")
    click.echo(report.gate.table())
    click.echo(report.gate.summary(report.version))
    if report.promoted:
        click.echo(f"adapter {report.version} trained on {report.trained} records and promoted")
    else:
        click.echo(f"adapter {report.version} kept but NOT promoted; "
                   f"`redline adapters promote {report.version}` to override")


@click.command("eval")
@click.argument("version", required=False)
@click.option("--model", help="Base model (default: the configured one).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_(version: str | None, model: str | None, as_json: bool) -> None:
    """Run the evaluation gate on VERSION (default: the current adapter, else the newest)."""
    from redline.adapter_store import registry_for
    from redline.queue import open_store
    from redline.trainer.data import examples_from_store
    from redline.trainer.gate import GateThresholds, evaluate_gate
    from redline.trainer.run import human_code, model_for, train_config_for

    config = load_config()
    _quiet_loading()
    registry = registry_for(config)
    version = version or registry.current() or (registry.versions() or [None])[-1]
    if version is None:
        raise NotFound("no adapter for this repo yet", fix="run `redline train`")
    path = registry.path(version)
    store = open_store(config)
    try:
        heldout = examples_from_store(store, split="heldout")
    finally:
        store.close()
    tcfg = train_config_for(config)
    parent = registry.meta(version).get("parent_version")
    baseline = registry.path(parent) if parent in registry.versions() else None
    report = evaluate_gate(model_for(config, model), path, heldout, human_texts=human_code(config.repo_root, tcfg),
                           repo_root=config.repo_root,
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
    """List, promote, roll back or export this repo's adapters."""


@adapters.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
def list_(as_json: bool) -> None:
    """Adapter versions, oldest first; * marks the one being served."""
    from redline.adapter_store import registry_for

    rows = registry_for(load_config()).table()
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
    from redline.adapter_store import registry_for
    from redline.trainer.identity import check_base

    config = load_config()
    registry = registry_for(config)
    if config.model:  # an adapter of another base model is refused, in one line naming both
        check_base(registry.meta(version), config.model)
    registry.promote(version)
    _publish_with_store(config, registry)
    click.echo(f"{version} is now current")


@adapters.command("rollback")
def rollback() -> None:
    """Serve the previously promoted adapter again (or the base model)."""
    from redline.adapter_store import registry_for

    config = load_config()
    registry = registry_for(config)
    previous = registry.rollback()
    _publish_with_store(config, registry)
    click.echo(f"{previous} is now current" if previous else "no adapter is current; serving the base model")


@adapters.command("export")
@click.argument("version")
@click.option("--to", "target", required=True, type=click.Choice(["dir", "vllm", "llamacpp", "ollama"]),
              help="The runtime to export for (docs/export.md).")
@click.option("-o", "--out", type=click.Path(), help="Where to write (default: the repo's state dir, exports/).")
@click.option("--base", help="The target's base model: a vLLM model, the base .gguf (or HF folder) for llama.cpp, "
                             "the Ollama FROM model.")
def export(version: str, target: str, out: str | None, base: str | None) -> None:
    """Export VERSION (or `current`) for another runtime: a PEFT folder, vLLM, a llama.cpp GGUF, or Ollama."""
    from pathlib import Path

    from redline.errors import RedlineError
    from redline.export.runtimes import export_adapter

    try:
        result = export_adapter(load_config(), version, target, Path(out) if out else None, base=base)
    except OSError as exc:  # the place -o names cannot be written: one line, not a traceback
        raise RedlineError(f"could not write the export ({exc.strerror or exc})", path=exc.filename or out,
                           fix="choose another -o") from None
    click.echo(f"{result.version} exported for {target} as {result.name}: {result.path}")
    for line in result.ran or []:
        click.echo(f"ran: {line}")
    for line in result.commands:
        click.echo(f"  {line}")


def _publish_with_store(config: Config, registry: Any) -> None:
    from redline.queue import open_store
    from redline.status import publish_adapter

    store = open_store(config)
    try:
        publish_adapter(store, registry)
    finally:
        store.close()
    _tell_server(config)


def _tell_server(config: Config) -> None:
    """A running `redline serve` swaps to the new current adapter now rather than at its next poll (the call
    carries the server's control token, from its serve.json); nothing happens when none runs."""
    from redline.serve import control

    if not control.reload(config):
        return
    for version, why in sorted(((control.health(config) or {}).get("failed") or {}).items()):
        click.echo(f"redline serve could not load {version}: {why}", err=True)
