"""`redline status | log | show | prune`: look at what has been collected."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape
from rich.table import Column, Table

from redline.adapter_store import registry_for
from redline.cli.common import console, context
from redline.errors import NotFound
from redline.online import SUGGESTED, check_served
from redline.queue import Store
from redline.records import Feedback, Generation, Range
from redline.status import TrainingStatus, read_status


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Records by kind and source, attributed vs not, last training, current adapter."""
    from redline.serve.control import find_server

    config, store = context()
    counts = store.counts()
    server = find_server(config)
    online = check_served(store, registry_for(config))
    info = {
        "repo_id": config.repo_id,
        "queue": config.queue_location,
        **counts,
        "training": read_status(store).to_dict(),
        "acceptance": store.acceptance(SUGGESTED),
        "serve": None if server is None else {"url": server.base_url, "pid": server.pid,
                                              "failed_adapters": server.failed or {}},
        "online": online.line() if online else None,
    }
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    console.print(f"[bold]{config.repo_id}[/]  ({config.queue_location})")
    console.print(
        f"{counts['generations']} generations, {counts['generations_with_feedback']} with feedback; "
        f"{counts['feedback']} feedback records, {counts['attributed']} attributed, "
        f"{counts['feedback'] - counts['attributed']} unattributed; {counts['spans']} tracked spans"
    )
    awaiting = counts.get("awaiting_generation") or {}
    if awaiting.get("feedback"):
        console.print(f"{awaiting['feedback']} feedback records await the generation record of "
                      f"{awaiting['generations']} ids a front-end gave (see `redline show ID`)")
    table = Table("kind", "source", "records", "attributed", title="feedback")
    for row in counts["by_kind_source"]:
        table.add_row(row["kind"], row["source"], str(row["count"]), str(row["attributed"]))
    console.print(table)
    states = counts["states"]
    console.print(f"training queue: {states.get('new', 0)} new, {states.get('claimed', 0)} claimed, "
                  f"{states.get('trained', 0)} trained")
    _print_training(read_status(store))
    if server is not None:
        console.print(f"redline serve:   {server.base_url} (pid {server.pid})")
        for version, why in sorted((server.failed or {}).items()):  # one line each, as the server logged it
            console.print(f"[red]adapter {escape(version)} failed to load in redline serve[/]: {escape(why)}",
                          soft_wrap=True)
    _print_acceptance(info["acceptance"])
    if online is not None:
        console.print(online.line())


def _print_acceptance(rows: list[dict[str, Any]]) -> None:
    """Suggestions taken per adapter version: tracked in a file (linked or marked) or accepted in the editor."""
    if not rows:
        return
    table = Table("adapter", "suggested", "accepted", "rate", title="completions accepted")
    for row in rows:
        rate = row["accepted"] / row["suggested"] if row["suggested"] else 0.0
        table.add_row(row["adapter_version"] or "base model", str(row["suggested"]), str(row["accepted"]),
                      f"{rate:.0%}")
    console.print(table)


def _print_training(training: TrainingStatus) -> None:
    last, adapter, daemon = training.last, training.adapter, training.daemon
    if last is None:
        console.print("last training:   never — run `redline train`")
    else:
        what = last.result + (f" {last.version}" if last.version else "") + (f" ({last.reason})" if last.reason
                                                                             else "")
        console.print(f"last training:   {last.at}  {what}")
        if last.probe:
            console.print(f"                 {last.probe}")
    if adapter.version is None:
        console.print("current adapter: none (base model)")
    else:
        console.print(f"current adapter: {adapter.version}" + (f"  {adapter.summary}" if adapter.summary else
                                                                (f"  {adapter.figures()}" if adapter.gate else "")))
    if adapter.note:
        console.print(f"                 {adapter.note}")
    if daemon is not None:
        console.print(f"daemon:          {daemon.state}" + (f" ({daemon.detail})" if daemon.detail else "")
                      + (f", next training {daemon.next_training}" if daemon.next_training else ""))


@click.command()
@click.option("-n", "--limit", default=20, show_default=True, help="How many generations.")
def log(limit: int) -> None:
    """Recent generations, newest first, with their feedback counts."""
    _, store = context()
    every = list(store.generations())
    shown = short_ids([g.id for g in every])
    gens = every[-limit:][::-1]
    width = max((len(shown[g.id]) for g in gens), default=2)
    table = Table(Column("id", no_wrap=True, min_width=width), "created", "format", "origin", "where", "feedback",
                  "first line of completion")
    for g in gens:
        fbs = store.feedback_for(g.id)
        kinds = ", ".join(sorted({f.kind for f in fbs})) or "-"
        where = g.insertion.path if g.insertion else "-"
        first = (g.completion.strip().splitlines() or [""])[0][:50]
        table.add_row(shown[g.id], g.created_at[:19], g.prompt_format, g.origin, where, f"{len(fbs)} {kinds}", first)
    console.print(table)


@click.command()
@click.argument("generation_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record as stored (JSON).")
def show(generation_id: str, as_json: bool) -> None:
    """One generation (an id or a unique prefix): prompt, completion and all its feedback."""
    _, store = context()
    awaiting = store.awaiting(generation_id)
    if not store.find_generations(generation_id) and len(awaiting) == 1:
        _show_awaiting(store, next(iter(awaiting)), as_json)
        return
    gen = _find(store, generation_id)
    fbs = store.feedback_for(gen.id)
    if as_json:
        click.echo(json.dumps({"generation": gen.to_dict(), "feedback": [f.to_dict() for f in fbs]}, indent=2))
        return
    console.print(f"[bold]generation {gen.id}[/]  {gen.created_at}  {gen.prompt_format}  origin={gen.origin}  "
                  f"model={gen.model.id}  adapter={gen.adapter_version or '-'}  split={gen.split}")
    if gen.insertion:
        where = f":{lines(gen.insertion.range)}" if gen.insertion.range else ""
        console.print(f"inserted at {gen.insertion.path}{where}")
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
    _print_feedback(fbs)


def _show_awaiting(store: Store, generation_id: str, as_json: bool) -> None:
    """Feedback kept for an id whose generation record has not arrived (a front-end's own id)."""
    fbs = store.feedback_for(generation_id)
    if as_json:
        click.echo(json.dumps({"generation": None, "awaiting_generation": generation_id,
                               "feedback": [f.to_dict() for f in fbs]}, indent=2))
        return
    console.print(f"[bold]generation {generation_id}[/]  awaiting its generation record: a front-end recorded code"
                  " under this id but has not sent the generation (its feedback is kept and exported)")
    _print_feedback(fbs)


def _print_feedback(fbs: list[Feedback]) -> None:
    console.rule(f"feedback ({len(fbs)})")
    for f in fbs:
        loc = f" {f.path}:{lines(f.range)}" if f.path and f.range else ""
        console.print(f"- {f.kind}/{f.source} [{f.severity}]{loc} {f.rule or ''} {f.message}", markup=False)
        if f.correction is not None:
            console.print(f"  corrected to:\n{f.correction}", markup=False)


def lines(rng: Range) -> str:
    """A range as people read line numbers: 1-based, inclusive (`12` or `12-15`)."""
    first, last = rng.start_line + 1, rng.last_line + 1
    return str(first) if first == last else f"{first}-{last}"


def short_ids(ids: list[str], at_least: int = 8) -> dict[str, str]:
    """Each id's shortest prefix that no other id shares (UUIDv7s made in one second share ~9 characters), so
    `redline log` shows ids one can tell apart and pass to `redline show` at any terminal width."""
    ordered = sorted(ids)
    out = {}
    for i, gid in enumerate(ordered):
        common = max((_common(gid, ordered[j]) for j in (i - 1, i + 1) if 0 <= j < len(ordered)), default=0)
        out[gid] = gid[:max(at_least, common + 1)]
    return out


def _common(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


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
