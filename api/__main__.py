"""Serve the EMR API alone: ``python -m resilin.api --home HOME [--workers N]``.

Only the web service over the configured Redis: no orchestrator, no clouds, no storage, so
clusters created here are recorded and never provisioned.  Benchmarks and API tests use it;
``resilin server`` runs the whole of Resilin.  With ``--workers N`` the API runs in N
processes listening on the same port (SO_REUSEPORT), the kernel spreading connections.
Prints ``listening on http://HOST:PORT`` once it serves.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from resilin.settings import config as config_module


def serve(home: Path, port: int | None, redis_url: str, workers: int, threads: int, parent: int = 0) -> None:
    from twisted.application.internet import TimerService
    from twisted.internet.interfaces import IListeningPort

    from resilin.api.server import make_site
    from resilin.clouds.offered_types import offered_types
    from resilin.jobflows.service import EmrService
    from resilin.jobflows.store import JobFlowStore
    from resilin.service.composition import CallService, ListeningService, OrderedServices
    from resilin.service.ports import adopt, listening_socket, reactor
    from resilin.service.redis_server import RedisService
    from resilin.settings.private_files import private_home, private_process

    private_process()  # before any file (or child process) is made
    settings = config_module.load(home)
    private_home(settings.home)
    # Bound first: with port 0, the workers are told the port it got.
    sock = listening_socket(
        settings.bind_host, settings.api_port if port is None else port, reuse_port=True, backlog=1024
    )
    port = sock.getsockname()[1]
    redis = RedisService(redis_url or settings.redis_url, settings.home)
    children: list[subprocess.Popen] = []

    def serve_api() -> list[IListeningPort]:
        service = EmrService(JobFlowStore(redis.client), settings.region, offered_types(settings))
        return [
            adopt(
                sock, make_site(service, settings.credentials, settings.region, limits=settings.http_limits)
            )
        ]

    def start_workers() -> None:
        worker = [sys.executable, "-m", "resilin.api", "--home", str(home), "--port", str(port), "--redis-url",
                  redis.url, "--threads", str(threads), "--workers", "1", "--parent", str(os.getpid())]  # fmt: skip
        children.extend(subprocess.Popen(worker) for _ in range(workers - 1))

    def stop_workers() -> None:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()

    processes = OrderedServices()
    processes.addService(redis)
    processes.addService(ListeningService("EMR API", serve_api))
    processes.addService(CallService("workers", start_workers, stop_workers))
    if parent:
        # A worker process ends with the process that started it, however that one ended.
        TimerService(1.0, lambda: os.getppid() != parent and reactor.stop()).setServiceParent(processes)
    processes.startService()
    reactor.addSystemEventTrigger("before", "shutdown", processes.stopService)
    reactor.suggestThreadPoolSize(threads)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    logging.getLogger(__name__).info(
        "EMR API (pid %d) on http://%s:%d, no orchestrator", os.getpid(), settings.bind_host, port
    )
    if not parent:
        address = config_module.connect_address(settings.bind_host)
        reactor.callWhenRunning(print, f"listening on http://{address}:{port}", flush=True)
    reactor.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resilin.api", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home", type=Path, default=os.environ.get("RESILIN_HOME") or config_module.DEFAULT_HOME
    )
    parser.add_argument(
        "--port", type=int, help="port to listen on (default: api_port of the configuration; 0: any, printed)"
    )
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
