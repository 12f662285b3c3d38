"""`flower-superlink` whose network-facing address serves the Fleet API only.

    python -m slicerleap.federated.guarded_superlink --fleet-host 0.0.0.0 --fleet-port 9092 \\
        --host 127.0.0.1 --port 40123 <other flower-superlink options>

flwr 1.42 serves its Fleet API (what SuperNodes call), Control API (node registration, run submission) and
Runtime API (ServerApp I/O) from one HTTP server on `--host:--port`, so a coordinator listening on 0.0.0.0
let anyone holding `ca.crt` register a node and submit a run. Here Flower's own app is served on two
sockets of one server: `--host:--port` (loopback: the `flwr` CLI, SuperExec and ServerApp use it) with every
API, and `--fleet-host:--fleet-port` (where the sites connect) with `/v1/fleet/*` only; anything else there
is answered 403 before Flower sees it. Written against flwr 1.42.0 (pinned)."""
from __future__ import annotations

import sys

FLEET_PREFIX = "/v1/fleet/"


class FleetOnly:
    """ASGI wrapper: requests that reached `public_port` get only the Fleet API."""

    def __init__(self, app, public_port: int):
        self.app, self.public_port = app, public_port

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and (scope.get("server") or (None, None))[1] == self.public_port \
                and not scope.get("path", "").startswith(FLEET_PREFIX):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            body = b"Only the Fleet API is served on this address."
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _pop_option(argv: list[str], name: str) -> str:
    if name not in argv or argv.index(name) + 1 >= len(argv):
        sys.exit(f"{name} is required")
    at = argv.index(name)
    value = argv[at + 1]
    del argv[at:at + 2]
    return value


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    fleet_host, fleet_port = _pop_option(argv, "--fleet-host"), int(_pop_option(argv, "--fleet-port"))
    sys.argv = ["flower-superlink", *argv]  # Flower parses sys.argv itself

    from importlib import import_module
    from logging import INFO

    import uvicorn
    from flwr.supercore import log
    from flwr.supercore.http_logging import get_uvicorn_log_config
    from flwr.supercore.logger import console_handler
    from flwr.superlink.main import create_app

    cli = import_module("flwr.superlink.cli.flower_superlink")  # the module; the package re-exports a function of that name

    config = cli._parse_superlink_lifespan_config()  # what flower_superlink() does, up to uvicorn.run
    if config.host not in ("127.0.0.1", "::1", "localhost") or config.port == fleet_port:
        sys.exit("--host:--port must be a loopback address apart from the Fleet API's: the Control and Runtime APIs "
                 "are never served to the network")
    app = FleetOnly(create_app(config, cli.SuperLinkLifespan), fleet_port)
    # like flower_superlink(); each Config sets up logging again, so both get Flower's
    common = dict(ssl_keyfile=config.ssl_keyfile, ssl_certfile=config.ssl_certfile, access_log=True,
                  log_config=get_uvicorn_log_config(console_handler.level))
    private = uvicorn.Config(app, host=config.host, port=config.port, **common)
    public = uvicorn.Config(app, host=fleet_host, port=fleet_port, **common)
    sockets = [private.bind_socket(), public.bind_socket()]
    log(INFO, "SlicerLeap: Control and Runtime APIs on %s:%s only; Fleet API on %s:%s", config.host, config.port,
        fleet_host, fleet_port)
    uvicorn.Server(private).run(sockets=sockets)


if __name__ == "__main__":
    main()
