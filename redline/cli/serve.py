"""`redline serve` (the base model + this repo's adapter behind the endpoints editor plugins call) and
`redline proxy` (the same endpoints and recording in front of a server you already run). See docs/serving.md."""

from __future__ import annotations

import logging
import sys

import click

from redline.cli.common import context, err_console

_HOST = click.option("--host", default="127.0.0.1", show_default=True,
                     help="Address to listen on; anything but loopback needs --allow-remote.")
_REMOTE = click.option("--allow-remote", is_flag=True,
                       help="Allow a non-loopback --host (the endpoints have no authentication).")
_BODY = click.option("--max-body", type=click.IntRange(1024), default=4 * 1024 * 1024, show_default=True,
                     help="Largest request body in bytes (bigger ones get HTTP 413).")
_LOG = click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
                    show_default=True)
_ORIGIN = click.option("--allow-origin", "allow_origins", multiple=True, metavar="ORIGIN",
                       help="Let web pages of ORIGIN (e.g. https://vscode.dev) use the endpoints; repeatable. "
                            "Requests from any other page are refused (docs/serving.md, Browsers).")
_ALLOW_HOST = click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
                           help="Also answer requests addressed to NAME (the Host header); repeatable. IP addresses "
                                "and localhost are always answered.")


def _setup(host: str, port: int, allow_remote: bool, log_level: str, hosts: tuple[str, ...],
           origins: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """(socket, guard policy): the socket bound, the policy built from the flags (a --host name is allowed)."""
    from redline.serve.guard import Policy, is_ip
    from redline.serve.listen import bind, is_loopback

    logging.basicConfig(stream=sys.stderr, level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    policy = Policy.of([*hosts, *([host] if not is_ip(host) and host != "localhost" else [])], origins)
    sock = bind(host, port, allow_remote=allow_remote)
    if not is_loopback(host):
        err_console.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach it can use the model "
                          "and write to this repo's queue")
    return sock, policy


@click.command("serve")
@click.option("--model", "model_path", default=None, help="Base model directory (default: `model` in the config).")
@_HOST
@click.option("--port", type=click.IntRange(0, 65535), default=8012, show_default=True,
              help="Port (0 = any free one; llama.vim's default endpoint is port 8012).")
@_REMOTE
@_BODY
@click.option("--device", default=None, help="torch device (default: cuda when available, else cpu).")
@_LOG
@_ORIGIN
@_ALLOW_HOST
def serve(model_path: str | None, host: str, port: int, allow_remote: bool, max_body: int, device: str | None,
          log_level: str, allow_origins: tuple[str, ...], allow_hosts: tuple[str, ...]) -> None:
    """Serve the base model with this repo's current adapter; every answer is recorded."""
    import secrets

    from redline.errors import ConfigError

    config, store = context()
    model_path = model_path or config.model
    if not model_path:
        raise ConfigError("no base model to serve", fix="pass --model DIR or set `model` in redline.toml")
    sock, policy = _setup(host, port, allow_remote, log_level, allow_hosts, allow_origins)

    from redline.serve.app import Served, build_app
    from redline.serve.control import serve_file
    from redline.serve.engine import Engine
    from redline.serve.listen import ServeFile, run

    engine = Engine(config, model_path, device=device)
    token = secrets.token_urlsafe(32)  # per start: the control endpoints' key, kept in serve.json (0600)
    state = ServeFile(serve_file(config), sock, host, token)
    url = f"http://{host}:{sock.getsockname()[1]}"

    def started() -> None:  # serve.json first: whoever reads this line can find the server
        state.write(failed=dict(engine.failed))
        click.echo(f"redline serve: {url} — {engine.repo_name} on {model_path}, adapter "
                   f"{engine.current or 'none (base model)'}", err=True)

    served = Served(engine=engine, config=config, store=store, max_body=max_body, token=token,
                    on_failed=state.note_failed)
    app = build_app(served, policy=policy, on_start=started, on_stop=state.remove)
    try:
        run(app, sock, log_level=log_level)
    finally:
        state.remove()


@click.command("proxy")
@click.option("--upstream", required=True, help="Base URL of the model server, e.g. http://127.0.0.1:8080.")
@_HOST
@click.option("--port", type=click.IntRange(0, 65535), default=8013, show_default=True, help="Port (0 = any).")
@_REMOTE
@_BODY
@_LOG
@_ORIGIN
@_ALLOW_HOST
def proxy(upstream: str, host: str, port: int, allow_remote: bool, max_body: int, log_level: str,
          allow_origins: tuple[str, ...], allow_hosts: tuple[str, ...]) -> None:
    """Record every generation of a server you already run (llama.cpp, vLLM, Ollama, LM Studio)."""
    config, store = context()
    sock, policy = _setup(host, port, allow_remote, log_level, allow_hosts, allow_origins)

    from redline.serve.listen import run
    from redline.serve.proxy import Proxy, build_proxy_app

    px = Proxy.start(config, store, upstream, max_body=max_body)
    click.echo(f"redline proxy: http://{host}:{sock.getsockname()[1]} → {px.upstream} "
               f"(upstream model {px.upstream_model or 'unknown'})", err=True)
    run(build_proxy_app(px, policy=policy), sock, log_level=log_level)
