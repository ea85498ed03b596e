"""Serve the EMR API alone: ``python -m resilin.api --home HOME [--workers N]``.

Only the web service over the configured Redis: no orchestrator, no clouds, no storage, so
clusters created here are recorded and never provisioned.  Benchmarks and API tests use it;
``resilin server`` runs the whole of Resilin.  With ``--workers N`` the API runs in N
processes listening on the same port (SO_REUSEPORT), the kernel spreading connections.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from resilin.settings import config as config_module


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve(home: Path, port: int | None, redis_url: str, workers: int, threads: int, parent: int = 0) -> None:
    from twisted.internet import reactor, task

    from resilin.api.server import make_site
    from resilin.clouds.offered_types import offered_types
    from resilin.jobflows.service import EmrService
    from resilin.jobflows.store import JobFlowStore
    from resilin.service.redis_server import connect
    from resilin.settings.private_files import private_home, private_process

    private_process()  # before any file (or child process) is made
    settings = config_module.load(home)
    private_home(settings.home)
    client, private = connect(redis_url or settings.redis_url, settings.home)
    url = redis_url or settings.redis_url or (private.url if private else "")
    port = port or settings.api_port
    worker = [sys.executable, "-m", "resilin.api", "--home", str(home), "--port", str(port), "--redis-url", url,
              "--threads", str(threads), "--workers", "1", "--parent", str(os.getpid())]  # fmt: skip
    children = [subprocess.Popen(worker) for _ in range(workers - 1)]
    service = EmrService(JobFlowStore(client), settings.region, offered_types(settings))
    site = make_site(service, settings.credentials, settings.region, limits=settings.http_limits)
    sock = _listening_socket(settings.bind_host, port)
    reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, site)
    sock.close()
    reactor.suggestThreadPoolSize(threads)

    def stop() -> None:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        if private is not None:
            private.stop()

    reactor.addSystemEventTrigger("before", "shutdown", stop)
    if parent:
        # A worker process ends with the process that started it, however that one ended.
        orphaned = task.LoopingCall(lambda: os.getppid() != parent and reactor.stop())
        orphaned.start(1.0, now=False)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    logging.getLogger(__name__).info(
        "EMR API (pid %d) on http://%s:%d, no orchestrator", os.getpid(), settings.bind_host, port
    )
    reactor.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resilin.api", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home", type=Path, default=os.environ.get("RESILIN_HOME") or config_module.DEFAULT_HOME
    )
    parser.add_argument("--port", type=int, help="port to listen on (default: api_port of the configuration)")
    parser.add_argument("--redis-url", default="", help="Redis to use (default: the configuration's)")
    parser.add_argument("--workers", type=int, default=1, help="processes serving the API (default 1)")
    parser.add_argument("--threads", type=int, default=4, help="threads per process calling the core")
    parser.add_argument("--parent", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.home, args.port, args.redis_url, max(1, args.workers), max(1, args.threads), args.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
