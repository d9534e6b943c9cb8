"""`redline lsp`: start the language server (stdio by default; `--tcp HOST:PORT` to attach a client by hand)."""

from __future__ import annotations

import logging
import sys

import click


@click.command("lsp")
@click.option("--tcp", "tcp", metavar="HOST:PORT", default=None, help="Listen on TCP instead of stdio (debugging).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True, help="Log level (the log goes to stderr; stdout is the protocol).")
def lsp(tcp: str | None, log_level: str) -> None:
    """Start the language server (stdio by default)."""
    host, port = None, None
    if tcp is not None:
        host, sep, port_text = tcp.rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise click.BadParameter("expected HOST:PORT, e.g. 127.0.0.1:2087", param_hint="--tcp")
        port = int(port_text)
    logging.basicConfig(stream=sys.stderr, level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(log_level.upper())))

    from redline.lsp_server.server import create_server

    server = create_server()
    if host is not None and port is not None:
        server.start_tcp(host, port)
    else:
        server.start_io()
