"""`redline init`: write a config for this repo and say what to do next."""

from __future__ import annotations

import click

from redline.cli.common import console
from redline.config import load_config
from redline.queue import open_store

TEMPLATE = """\
# Redline settings for this repository (all optional; see docs/config.md).
# model = "path/to/local/hf-model"     # base model for `redline train`
heldout_fraction = 0.15                # share of prompts kept for the evaluation gate
retention_days = 365                   # `redline prune` deletes older records
scrub_secrets = true                   # redact keys, tokens and passwords before anything is queued
settle_seconds = 30                    # a generated span untouched this long turns human changes into `edit` feedback
"""


@click.command()
@click.option("--model", help="Base model: a local Hugging Face directory or a hub id already in the cache.")
@click.option("--force", is_flag=True, help="Overwrite an existing redline.toml.")
def init(model: str | None, force: bool) -> None:
    """Write redline.toml for this repo, create its queue, and print the next steps."""
    config = load_config()
    target = config.repo_root / "redline.toml"
    if target.exists() and not force:
        console.print(f"[yellow]kept[/] {target} (use --force to overwrite)")
    else:
        text = TEMPLATE if model is None else TEMPLATE.replace('# model = "path/to/local/hf-model"  ',
                                                                  f"model = {_toml_string(model)}")
        target.write_text(text, encoding="utf-8")
        console.print(f"[green]wrote[/] {target}")
    config = load_config()
    open_store(config).close()
    from redline.daemon.registry import register

    if register(config.home, config.repo_root, config.repo_id):
        console.print(f"registered   for `redline daemon` ({config.home / 'daemon' / 'repos.json'})")
    console.print(f"repo id      {config.repo_id}")
    console.print(f"queue        {config.queue_location}", markup=False)
    console.print(f"adapters     {config.adapter_store or config.adapters_dir}", markup=False)
    console.print("\nNext steps:")
    for step in (
        "pytest --redline                 record test failures on model-written code",
        "redline lsp                      (started by the editor plugin: editors/nvim, docs/editors.md)",
        "redline ci ingest report.sarif   add linter / CI output",
        "redline status                   see what has been collected",
        "redline train --model PATH       distil it into an adapter (needs `pip install 'redline[train]'`)",
    ):
        console.print(f"  {step}", markup=False)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
