"""Running the app: in the foreground (`slimlab serve`), or in a background thread on a free port of
127.0.0.1 (tests and benchmarks)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from slimlab.errors import SlimlabError
from slimlab.serve.app import create_app
from slimlab.serve.model import Servable

LOCALHOST = "127.0.0.1"


def _config(app, host: str, port: int) -> uvicorn.Config:
    # One worker process, the asyncio loop, no access log (a log line per request costs throughput).
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")


def serve_forever(servable: Servable, host: str = LOCALHOST, port: int = 8000, **app_options) -> None:
    uvicorn.Server(_config(create_app(servable, **app_options), host, port)).run()


class BackgroundServer:
    """`with BackgroundServer(servable) as url:` serves on 127.0.0.1 at a free port until the block ends."""

    def __init__(self, servable: Servable, **app_options):
        self.app = create_app(servable, **app_options)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((LOCALHOST, 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://{LOCALHOST}:{self.port}"
        self.server = uvicorn.Server(_config(self.app, LOCALHOST, self.port))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise SlimlabError("the model server did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
