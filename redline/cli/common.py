"""What every command needs: the config for the current repo, its queue, and a console."""

from __future__ import annotations

from rich.console import Console

from redline.config import Config, load_config
from redline.queue import Store, open_store

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def context() -> tuple[Config, Store]:
    config = load_config()
    return config, open_store(config)
