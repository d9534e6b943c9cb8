"""`redline status | log | show | prune`: look at what has been collected."""

from __future__ import annotations

import json

import click
from rich.table import Table

from redline.cli.common import console, context
from redline.errors import NotFound
from redline.queue import Store
from redline.records import Generation


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Records by kind and source, attributed vs not, last training, current adapter."""
    config, store = context()
    counts = store.counts()
    info = {
        "repo_id": config.repo_id,
        "queue": str(config.db_path),
        **counts,
        "last_training": store.get_meta("last_training"),
        "current_adapter": store.get_meta("current_adapter"),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    console.print(f"[bold]{config.repo_id}[/]  ({config.db_path})")
    console.print(
        f"{counts['generations']} generations, {counts['generations_with_feedback']} with feedback; "
        f"{counts['feedback']} feedback records, {counts['attributed']} attributed, "
        f"{counts['feedback'] - counts['attributed']} unattributed; {counts['spans']} tracked spans"
    )
    table = Table("kind", "source", "records", "attributed", title="feedback")
    for row in counts["by_kind_source"]:
        table.add_row(row["kind"], row["source"], str(row["count"]), str(row["attributed"]))
    console.print(table)
    states = counts["states"]
    console.print(f"training queue: {states.get('new', 0)} new, {states.get('claimed', 0)} claimed, "
                  f"{states.get('trained', 0)} trained")
    last = info["last_training"]
    console.print(f"last training:  {_summary(last) if last else 'never — run `redline train`'}")
    current = info["current_adapter"]
    console.print(f"current adapter: {_summary(current) if current else 'none (base model)'}")


@click.command()
@click.option("-n", "--limit", default=20, show_default=True, help="How many generations.")
def log(limit: int) -> None:
    """Recent generations, newest first, with their feedback counts."""
    _, store = context()
    gens = list(store.generations())[-limit:][::-1]
    table = Table("id", "created", "format", "origin", "where", "feedback", "first line of completion")
    for g in gens:
        fbs = store.feedback_for(g.id)
        kinds = ", ".join(sorted({f.kind for f in fbs})) or "-"
        where = g.insertion.path if g.insertion else "-"
        first = (g.completion.strip().splitlines() or [""])[0][:50]
        table.add_row(g.id[:12], g.created_at[:19], g.prompt_format, g.origin, where, f"{len(fbs)} {kinds}", first)
    console.print(table)


@click.command()
@click.argument("generation_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record as stored (JSON).")
def show(generation_id: str, as_json: bool) -> None:
    """One generation (an id or a unique prefix): prompt, completion and all its feedback."""
    _, store = context()
    gen = _find(store, generation_id)
    fbs = store.feedback_for(gen.id)
    if as_json:
        click.echo(json.dumps({"generation": gen.to_dict(), "feedback": [f.to_dict() for f in fbs]}, indent=2))
        return
    console.print(f"[bold]generation {gen.id}[/]  {gen.created_at}  {gen.prompt_format}  origin={gen.origin}  "
                  f"model={gen.model.id}  adapter={gen.adapter_version or '-'}  split={gen.split}")
    if gen.insertion:
        console.print(f"inserted at {gen.insertion.path} {gen.insertion.range or ''}")
    console.rule("prompt")
    p = gen.prompt
    for m in p.messages or []:
        console.print(f"{m.role}: {m.content}", markup=False)
    if p.prefix is not None:
        console.print(f"{p.prefix}<|completion|>{p.suffix or ''}", markup=False)
    elif p.text is not None and not p.messages:
        console.print(p.text, markup=False)
    console.rule("completion")
    console.print(gen.completion, markup=False)
    console.rule(f"feedback ({len(fbs)})")
    for f in fbs:
        loc = f" {f.path}:{f.range.start_line + 1}" if f.path and f.range else ""
        console.print(f"- {f.kind}/{f.source} [{f.severity}]{loc} {f.rule or ''} {f.message}", markup=False)
        if f.correction is not None:
            console.print(f"  corrected to:\n{f.correction}", markup=False)


@click.command()
@click.option("--days", type=float, help="Delete records older than this (default: retention_days).")
def prune(days: float | None) -> None:
    """Delete records older than the retention window."""
    config, store = context()
    n = store.prune(config.retention_days if days is None else days)
    console.print(f"pruned {n} records")


def _find(store: Store, prefix: str) -> Generation:
    gens = store.find_generations(prefix)
    if not gens:
        raise NotFound(f"no generation with id {prefix!r}", fix="see `redline log` for ids")
    if len(gens) > 1 and gens[0].id != prefix:
        raise NotFound(f"id prefix {prefix!r} is ambiguous ({len(gens)} matches)", fix="type more characters")
    return gens[0]


def _summary(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
    return str(value)
