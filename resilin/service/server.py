"""Runs Resilin: Redis, the storage service, the local clouds, the EMR API, the orchestrator and
reconciliation.

All HTTP services share one Twisted reactor.  The EMR API and the local clouds'
EC2 endpoints listen on the configured bind host (loopback by default); the
storage service also listens on each local cloud's gateway address, which is how
the cluster's nodes (and Hadoop's S3A) reach it.  Recovery and reconciliation
talk to the local clouds over HTTP, so they run off the reactor thread.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet import reactor

from resilin.aws.sigv4 import Credentials
from resilin.clouds.offered_types import offered_types
from resilin.clouds.reconciler import Reconciler
from resilin.clouds.registry import CloudRegistry
from resilin.cluster.cluster_credentials import ClusterCredentials
from resilin.cluster.orchestrator import Orchestrator
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from resilin.service import local_runtime
from resilin.service.redis_server import PrivateRedis, connect
from resilin.settings import config as config_module
from resilin.settings.config import CloudConfig, Settings
from resilin.settings.installation import installation_id
from resilin.settings.private_files import private_home, private_process

log = logging.getLogger("resilin")

IP_FREEBIND = 15  # from <linux/in.h>; Python's socket module does not name it

# The local clouds' own account: Resilin provisions there with a key made fresh at every start.
LOCAL_CLOUD_ACCOUNT = config_module.LOCAL_CLOUD_ACCOUNT


@dataclass
class LocalCloudRuntime:
    cloud: CloudConfig
    endpoint: str
    gateway: str
    credentials: Credentials


@dataclass
class Runtime:
    settings: Settings
    store: JobFlowStore
    orchestrator: Orchestrator
    private_redis: PrivateRedis | None
    local_clouds: dict[str, LocalCloudRuntime] = field(default_factory=dict)
    ports: list = field(default_factory=list)
    reconciler: Reconciler | None = None

    def stop(self) -> None:
        if self.reconciler is not None:
            self.reconciler.stop()
        self.orchestrator.stop()
        local_runtime.remove(self.settings.home)
        if self.private_redis is not None:
            self.private_redis.stop()


def _listen(site, port: int, host: str):
    return reactor.listenTCP(port, site, interface=host)


def _listen_freebind(site, port: int, host: str):
    """Listen on an address that may not exist yet.

    A podman bridge gets its gateway address only when its first container
    starts, so the socket is bound with IP_FREEBIND and adopted by the reactor.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    listening = reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, site)
    sock.close()  # the reactor holds its own duplicate of the descriptor
    return listening


def start(settings: Settings) -> Runtime:
    """Start every service in this process's reactor (call before ``reactor.run()``)."""
    from resilin.api.server import make_site as make_api_site
    from resilin.provisioners.localcloud import host_shield
    from resilin.provisioners.localcloud.server import bridge_interface, ensure_network
    from resilin.provisioners.localcloud.server import make_site as make_cloud_site
    from resilin.storage.server import make_site as make_storage_site

    # Settings made without load() are checked too: nothing may start with the reserved account.
    config_module.check_accounts(settings.accounts, str(settings.home / "resilin.toml"))
    private_home(settings.home)
    redis_client, private = connect(settings.redis_url, settings.home)
    store = JobFlowStore(redis_client)
    ports = []

    local: dict[str, LocalCloudRuntime] = {}
    ports_of_clouds = config_module.local_cloud_ports(settings)
    for cloud in settings.clouds:
        if cloud.kind != "local":
            continue
        port = ports_of_clouds[cloud.name]
        cloud_creds = Credentials(
            "AKIALOCAL" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30), LOCAL_CLOUD_ACCOUNT
        )
        # Resilin's accounts may use the local cloud too, each in its own account: that is where
        # they import the key pairs RunJobFlow's Ec2KeyName names (see resilin/clouds/user_keys.py).
        site = make_cloud_site(
            cloud,
            redis_client,
            lambda k, c=cloud_creds: c if k == c.access_key else settings.credentials(k),
            config_module.local_images(settings, cloud),
            operators=[LOCAL_CLOUD_ACCOUNT],  # Resilin operates its local clouds (faults through /admin/)
            limits=settings.http_limits,
        )
        # The network must exist now: the storage service listens on its gateway address.
        gateway = ensure_network(cloud)
        # Its instances run users' code: of the host they reach storage on the gateway, nothing else.
        host_shield.shield(bridge_interface(cloud.name), gateway, [settings.storage_port])
        ports.append(_listen(site, port, settings.localcloud_host))
        endpoint = f"http://{config_module.connect_address(settings.localcloud_host)}:{port}"
        local[cloud.name] = LocalCloudRuntime(cloud, endpoint, gateway, cloud_creds)
        log.info("local cloud %s: EC2 endpoint %s, network %s, gateway %s",
                 cloud.name, endpoint, cloud.subnet, gateway)  # fmt: skip
    local_runtime.write(
        settings.home,
        [
            local_runtime.LocalCloudAccess(
                name,
                r.endpoint,
                r.cloud.region,
                r.credentials.access_key,
                r.credentials.secret_key,
                r.gateway,
                os.getpid(),
            )  # fmt: skip
            for name, r in local.items()
        ],
    )

    # Storage also knows the clusters' own temporary credentials (resilin/cluster/cluster_credentials.py);
    # the EMR API and the local clouds' endpoints know only the configured keys.
    cluster_credentials = ClusterCredentials(redis_client)

    def storage_lookup(access_key: str) -> Credentials | None:
        return settings.credentials(access_key) or cluster_credentials.lookup(access_key)

    storage_site = make_storage_site(
        settings.data_dir / "storage", storage_lookup, settings.region, limits=settings.http_limits
    )
    ports.append(_listen(storage_site, settings.storage_port, settings.bind_host))
    for runtime in local.values():
        if settings.bind_host not in ("0.0.0.0", "::", runtime.gateway):  # a wildcard covers the gateway
            ports.append(_listen_freebind(storage_site, settings.storage_port, runtime.gateway))

    service = EmrService(store, settings.region, offered_types(settings))
    api_site = make_api_site(service, settings.credentials, settings.region, limits=settings.http_limits)
    ports.append(_listen(api_site, settings.api_port, settings.api_host))

    clouds = CloudRegistry(settings, local)

    def credentials_for(account: str) -> Credentials:
        return next(c for c in settings.accounts if c.account_id == account)

    orchestrator = Orchestrator(store, clouds, credentials_for, settings.home, settings.region)
    reconciler = Reconciler(
        store, clouds.names, clouds, installation_id(settings.home), settings.reconcile_interval
    )
    runtime = Runtime(settings, store, orchestrator, private, local, ports, reconciler)

    def recover_then_reconcile() -> None:
        # Off the reactor thread: both call the local clouds, which this reactor serves.
        try:
            orchestrator.start()
        finally:
            reconciler.start()

    reactor.callWhenRunning(reactor.callInThread, recover_then_reconcile)
    reactor.addSystemEventTrigger("before", "shutdown", runtime.stop)
    return runtime


class HostNotReady(Exception):
    """The preflight found problems; each of ``lines`` names one and its fix."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def serve(home: Path | None = None) -> None:
    from resilin.settings import preflight

    private_process()  # before any file (or child process) is made
    settings = config_module.load(home)
    found = preflight.problems(preflight.check(settings))
    if found:
        raise HostNotReady([f.line() for f in found])
    config_module.write_aws_credentials(settings)
    start(settings)
    log.info("EMR API on http://%s:%d, storage on http://%s:%d",
             settings.api_host, settings.api_port, settings.bind_host, settings.storage_port)  # fmt: skip
    reactor.suggestThreadPoolSize(32)
    # Installed once running: Twisted's own SIGTERM handler, set up by run(), would replace it.
    reactor.callWhenRunning(signal.signal, signal.SIGTERM, _stop_promptly)
    reactor.run(installSignalHandlers=True)
    # Clusters' threads may be waiting on SSH, or on a cloud that this reactor no longer serves;
    # none is waited for.  What they had in flight is recovered at the next start, as after a kill -9.
    logging.shutdown()
    os._exit(0)


STOP_GRACE = 10.0  # seconds for the services to close before the process exits regardless


def _stop_promptly(signum: int, frame: object) -> None:
    """SIGTERM: stop the services, and exit within STOP_GRACE seconds whatever still runs."""
    log.info("SIGTERM: stopping; clusters in flight are recovered at the next start")
    watchdog = threading.Timer(STOP_GRACE, os._exit, args=(1,))
    watchdog.daemon = True
    watchdog.start()
    reactor.callFromThread(reactor.stop)
