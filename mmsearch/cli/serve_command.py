"""`mmsearch serve`."""

from __future__ import annotations

import gc
import sys

import click

from mmsearch.cli.context import library_errors, open_engine


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (loopback: this machine only; anything else prints a warning).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port to listen on (0: any free one)."
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Keep the engine warm and serve the web app and HTTP API; `mmsearch query` on this home uses it while it runs.

    Prints a one-time sign-in link for a browser. API clients send the access token of service.json in the home
    (owner-only) in the X-Mmsearch-Token header. Ctrl-C or SIGTERM stops it.
    """
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open_engine(ctx) as engine:
        with library_errors():
            from mmsearch.web import require_server_extra

            require_server_extra()
            from mmsearch.web.server import WebServer

            server = WebServer(engine, host, port)  # a bad address fails now, before any model is loaded
            if not engine.warm_up(images=True):
                click.echo("nothing is indexed yet: searches fail until you run `mmsearch ingest`", err=True)
        if server.exposed:
            click.echo(
                f"mmsearch: warning: listening on {host}, not only on this machine: anyone who can reach it may try; "
                "every request needs the token of service.json or a sign-in link",
                err=True,
            )
        gc.collect()
        gc.freeze()  # what is loaded now lives as long as the service: no collection need ever walk it again
        info = server.start()
        click.echo(f"mmsearch: serving {engine.settings.home} at {info.url} (Ctrl-C to stop)", err=True)
        click.echo(f"mmsearch: open this link to sign in (it works once): {server.signin_url()}", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.close()
