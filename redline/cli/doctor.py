"""`redline doctor`: check what Redline depends on, each with the fix when it is wrong."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.table import Table

from redline.cli.common import console
from redline.config import Config, load_config
from redline.errors import RedlineError

Check = tuple[str, bool | None, str, str]  # name, ok (None = not applicable), detail, fix

MIN_FREE_GB = 5.0


def _python(_: Config) -> Check:
    ok = sys.version_info >= (3, 11)
    return "python", ok, sys.version.split()[0], "" if ok else "install Python 3.11 or newer"


def _torch(_: Config) -> Check:
    if importlib.util.find_spec("torch") is None:
        return "torch", None, "not installed (only needed to train)", "pip install 'redline[train]'"
    import torch

    return "torch", True, torch.__version__, ""


def _cuda(_: Config) -> Check:
    if importlib.util.find_spec("torch") is None:
        return "cuda", None, "torch not installed", ""
    import torch

    if not torch.cuda.is_available():
        return "cuda", None, "no GPU: training runs on the CPU (slow for real models)", ""
    name = torch.cuda.get_device_name(0)
    bf16 = torch.cuda.is_bf16_supported()
    return "cuda", True, f"{name}, bf16={'yes' if bf16 else 'no'}", ""


def _model(config: Config) -> Check:
    if not config.model:
        return "model", None, "no base model configured", "set `model` in redline.toml or pass --model"
    if importlib.util.find_spec("transformers") is None:
        return "model", False, config.model, "pip install 'redline[train]'"
    from transformers import AutoConfig, AutoTokenizer

    try:
        cfg = AutoConfig.from_pretrained(config.model, local_files_only=True)
        AutoTokenizer.from_pretrained(config.model, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:120]
        return "model", False, f"{config.model}: {first}", (
            "point `model` at a local Hugging Face directory, or fetch it once with `huggingface-cli download`")
    return "model", True, f"{config.model} ({cfg.model_type})", ""


def _disk(config: Config) -> Check:
    where = config.state_dir if config.state_dir.exists() else config.home
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free / 1e9
    ok = free >= MIN_FREE_GB
    return "disk", ok, f"{free:.1f} GB free at {where}", "" if ok else "free disk space or move REDLINE_HOME"


def _queue(config: Config) -> Check:
    if config.queue_url:
        return _team_queue(config)
    if not config.db_path.exists():
        return "queue", None, f"{config.db_path} (not created yet)", "run `redline init`"
    try:
        conn = sqlite3.connect(config.db_path)
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        mode = oct(Path(config.db_path).stat().st_mode & 0o777)
        conn.close()
    except sqlite3.DatabaseError as exc:
        return "queue", False, f"{config.db_path}: {exc}", "move the file aside; a new queue is created"
    ok = result == "ok"
    return "queue", ok, f"{config.db_path} integrity={result} mode={mode}", "" if ok else "restore from export"


def _team_queue(config: Config) -> Check:
    """The team's PostgreSQL: reachable, at this code's schema version, and what this machine still has spooled."""
    from redline.errors import RedlineError
    from redline.queue import open_store
    from redline.queue.spool import SPOOL_DIR

    where = config.queue_location
    spooled = len(list((config.state_dir / SPOOL_DIR).glob("*.jsonl")))
    pending = f"; {spooled} batch(es) spooled here, sent once it is reachable" if spooled else ""
    try:
        store = open_store(config)
    except RedlineError as exc:
        return "queue", False, f"{where}: {exc.message}", exc.fix or ""
    try:
        version = store.schema_version()  # type: ignore[attr-defined]
    except RedlineError as exc:
        return "queue", False, f"{where}: {exc.message}{pending}", exc.fix or ""
    finally:
        store.close()
    return "queue", True, f"{where} (PostgreSQL, schema version {version}){pending}", ""


def _checkers(_: Config) -> Check:
    ruff = shutil.which("ruff")
    fix = "" if ruff else "pip install ruff (the language server then runs it on save)"
    return "checkers", True, f"py_compile, ruff={'yes' if ruff else 'not found'}", fix


def _daemon(config: Config) -> Check:
    """Is `redline daemon` installed as a service, alive, and looking after this repository?"""
    from redline.daemon import registry, service
    from redline.daemon.main import running_pid

    try:
        repos = registry.registered(config.home)
    except RedlineError as exc:
        return "daemon", False, exc.one_line(), ""
    try:
        kind = service.detect()
        installed, service_ok = service.installed(service.plan(kind, config.home)), True
    except RedlineError:
        kind, installed, service_ok = "no service manager:", False, False
    pid = running_pid(config.home)
    mine = any(r.root == str(config.repo_root) for r in repos)
    detail = (f"{kind} service {'installed' if installed else 'not installed'}, "
              f"{'running (pid ' + str(pid) + ')' if pid else 'not running'}, "
              f"this repo {'registered' if mine else 'not registered'}")
    if installed and not pid:
        return "daemon", False, detail, f"see {config.home / 'logs' / 'daemon.log'} and `redline daemon status`"
    if not mine and (installed or pid):
        return "daemon", False, detail, "run `redline init` here so the daemon trains this repo"
    fix = "" if installed else ("redline daemon install" if service_ok else "start `redline daemon` at login")
    return "daemon", True if installed or pid else None, detail, fix


def _train_settings(config: Config) -> Check:
    """`[tool.redline.train]`: a typo or a bad value is found now, not when the night's training starts."""
    from redline.trainer.config import validate_train_settings

    problems = validate_train_settings(dict(config.train))
    if problems:
        return "train settings", False, "; ".join(problems), "fix [tool.redline.train] (see docs/trainer.md)"
    return "train settings", True, f"{len(config.train)} set, the rest default", ""


def _probe(config: Config) -> Check:
    """Can the model fix its own mistakes when shown the queue's feedback? The probe `redline train` runs first."""
    if not config.model or importlib.util.find_spec("torch") is None or not config.db_path.exists():
        return "hindsight probe", None, "needs a model, the training extra and a queue", ""
    from redline.queue import open_store
    from redline.trainer.api import probe_model
    from redline.trainer.data import examples_from_store
    from redline.trainer.feedback_text import is_passed
    from redline.trainer.run import train_config_for

    store = open_store(config)
    try:
        failed = [ex for ex in examples_from_store(store, split=None) if not is_passed(ex.feedback)]
    finally:
        store.close()
    if not failed:
        return "hindsight probe", None, "no feedback with a mistake queued yet", ""
    try:
        report = probe_model(config.model, failed, train_config_for(config), repo_root=config.repo_root)
    except RedlineError as exc:
        return "hindsight probe", False, exc.one_line(), "fix the model first (see `model` above)"
    line = report.line().split(": ", 1)[-1]
    if report.learnable:
        return "hindsight probe", True, line, ""
    return "hindsight probe", False if report.conclusive else None, line, report.advice if report.conclusive else ""


CHECKS: list[Callable[[Config], Check]] = [_python, _torch, _cuda, _model, _train_settings, _disk, _queue, _checkers,
                                           _daemon, _probe]


@click.command()
@click.option("--model", help="Check this model instead of the configured one.")
def doctor(model: str | None) -> None:
    """Check python, torch, CUDA, the model, disk space and the queue; exit 1 if anything is wrong."""
    try:
        config = load_config()
    except RedlineError as exc:
        console.print(f"[red]config: {exc.one_line()}[/]")
        sys.exit(1)
    if model:
        import dataclasses

        config = dataclasses.replace(config, model=model)
    table = Table("check", "", "detail", "fix")
    failed = False
    for check in CHECKS:
        name, ok, detail, fix = check(config)
        mark = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[dim]-[/]"}[ok]
        failed |= ok is False
        table.add_row(name, mark, detail, fix)
    console.print(table)
    if failed:
        sys.exit(1)
