"""`redline`: the composition root. Each command group lives in its own module and is imported only when used,
so `redline lsp` never loads torch and `redline status` starts fast."""

from __future__ import annotations

import importlib
import sys

import click

from redline.errors import RedlineError

#: command name → ("module:attribute", one-line help); modules are imported only when their command runs
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("redline.cli.setup:init", "Write a config for this repo and print the next steps."),
    "status": ("redline.cli.records:status", "Records by kind and source, training and adapter state."),
    "log": ("redline.cli.records:log", "Recent generations with their feedback counts."),
    "show": ("redline.cli.records:show", "One generation: prompt, completion and every piece of feedback."),
    "import": ("redline.cli.transfer:import_", "Import generations with feedback from JSONL or a CI bundle."),
    "export": ("redline.cli.transfer:export", "Export generations with feedback as JSONL."),
    "prune": ("redline.cli.records:prune", "Delete records older than the retention window."),
    "doctor": ("redline.cli.doctor:doctor", "Check python, torch, CUDA, the model, the queue and disk space."),
    "train": ("redline.cli.train:train", "Distil the queued feedback into a new adapter for this repo."),
    "eval": ("redline.cli.train:eval_", "Run the evaluation gate on an adapter version."),
    "adapters": ("redline.cli.train:adapters", "List, promote, roll back or export this repo's adapters."),
    "ci": ("redline.cli.ci:ci", "Ingest CI reports, wrap build commands, bundle feedback."),
    "lsp": ("redline.cli.lsp:lsp", "Start the language server (stdio by default)."),
    "daemon": ("redline.cli.daemon:daemon", "Train every `redline init` repo by itself, when the GPU is free."),
    "worker": ("redline.cli.worker:worker", "Train a team's repositories from the shared queue on this GPU machine."),
    "serve": ("redline.cli.serve:serve", "Serve the model with this repo's adapter; record every answer."),
    "proxy": ("redline.cli.serve:proxy", "Record every answer of a model server you already run."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in ("torch", "transformers", "peft", "safetensors"):
                return _missing_extra(name, exc.name)
            raise


def _missing_extra(name: str, package: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def needs_train_extra() -> None:
        raise click.ClickException(f"`redline {name}` needs {package} — run `pip install 'redline[train]'`")

    return needs_train_extra


@click.group(cls=LazyGroup)
@click.version_option(package_name="redline")
def cli() -> None:
    """Redline: turn red lines on local-model code into a better model for this repository."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: library errors become one line naming the fix, with exit code 1."""
    try:
        cli.main(args=argv, prog_name="redline", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RedlineError as exc:
        click.echo(f"redline: error: {exc.one_line()}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
