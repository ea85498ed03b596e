"""Runs Resilin: Redis, the storage service, the local clouds, the EMR API, the orchestrator and
reconciliation, as Twisted services started in that order and stopped in reverse.

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
import threading
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IListeningPort

from resilin.aws.sigv4 import Credentials
from resilin.clouds.offered_types import offered_types
from resilin.clouds.reconciler import Reconciler
from resilin.clouds.registry import CloudRegistry
from resilin.cluster.cluster_credentials import ClusterCredentials
from resilin.cluster.orchestrator import Orchestrator
from resilin.jobflows.service import EmrService
from resilin.jobflows.store import JobFlowStore
from resilin.service import local_runtime
from resilin.service.composition import CallService, ListeningService, LoopInThread, OrderedServices
from resilin.service.ports import listen, port_of, reactor
from resilin.service.redis_server import RedisService
from resilin.settings import config as config_module
from resilin.settings.config import CloudConfig, Settings
from resilin.settings.installation import installation_id

if TYPE_CHECKING:
    from resilin.provisioners.localcloud.podman_api import PodmanApi
    from resilin.provisioners.localcloud.wan import Wan
from resilin.settings.private_files import private_home, private_process

log = logging.getLogger("resilin")

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
    """What the services share: each fills in its part as it starts."""

    settings: Settings
    services: OrderedServices = field(default_factory=OrderedServices)
    redis: RedisService = field(init=False)
    local_clouds: dict[str, LocalCloudRuntime] = field(default_factory=dict)
    podman: PodmanApi | None = None  # the local clouds' container engine, through podman's service
    wan: Wan | None = None  # the network between the local clouds, made before them
    orchestrator: Orchestrator = field(init=False)
    reconciler: Reconciler = field(init=False)
    recovered: threading.Event = field(default_factory=threading.Event)  # the loops wait for it

    @cached_property
    def store(self) -> JobFlowStore:  # one for the EMR API, the orchestrator and reconciliation
        return JobFlowStore(self.redis.client)

    @cached_property
    def emr_service(self) -> EmrService:  # the core of the EMR API, which the console calls too
        return EmrService(self.store, self.settings.region, offered_types(self.settings))

    def api_port(self) -> int:
        return port_of(self.services.getServiceNamed("EMR API").ports[0])


def _serve_local_cloud(rt: Runtime, cloud: CloudConfig, port: int) -> list[IListeningPort]:
    from resilin.provisioners.localcloud import host_shield
    from resilin.provisioners.localcloud.server import bridge_interface, ensure_network, make_site

    settings = rt.settings
    cloud_creds = Credentials(
        "AKIALOCAL" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30), LOCAL_CLOUD_ACCOUNT
    )

    # Resilin's accounts may use the local cloud too, each in its own account: that is where
    # they import the key pairs RunJobFlow's Ec2KeyName names (see resilin/clouds/user_keys.py).
    def lookup(access_key: str) -> Credentials | None:
        return cloud_creds if access_key == cloud_creds.access_key else settings.credentials(access_key)

    site = make_site(
        cloud,
        rt.redis.client,
        lookup,
        config_module.local_images(settings, cloud),
        operators=[LOCAL_CLOUD_ACCOUNT],  # Resilin operates its local clouds (faults through /admin/)
        podman=rt.podman,
        limits=settings.http_limits,
        wan=rt.wan,
    )
    # The network must exist now: the storage service listens on its gateway address.
    gateway = ensure_network(cloud)
    # Its instances run users' code: of the host they reach storage on the gateway, nothing else
    # (an external S3 service on the host's loopback is reached there too: registry.nodes_storage_endpoint).
    storage_ports = [settings.storage_port]
    if cloud.storage is not None and cloud.storage.on_loopback:
        storage_ports.append(cloud.storage.port)
    host_shield.shield(bridge_interface(cloud.name), gateway, storage_ports)
    listening = listen(site, settings.localcloud_host, port)
    endpoint = f"http://{config_module.connect_address(settings.localcloud_host)}:{port}"
    rt.local_clouds[cloud.name] = LocalCloudRuntime(cloud, endpoint, gateway, cloud_creds)
    log.info("local cloud %s: EC2 endpoint %s, network %s, gateway %s",
             cloud.name, endpoint, cloud.subnet, gateway)  # fmt: skip
    return [listening]


def _start_container_engine(rt: Runtime) -> None:
    """podman's REST service for the local clouds' container calls (a podman process per call costs
    about 50 ms of CPU), told of the fence hook that loads an instance's firewall as it starts.
    From the main thread: the service is to die with this process (see podman_api.PodmanService)."""
    from resilin.provisioners.localcloud.fence_hook import FenceHook
    from resilin.provisioners.localcloud.podman_api import PodmanApi, PodmanService

    hook = FenceHook.create()
    reactor.addSystemEventTrigger("after", "shutdown", hook.remove)
    rt.podman = PodmanApi(PodmanService(fence_hook=hook).start())


def _stop_container_engine(rt: Runtime) -> None:
    # Calls still under way fall back to the podman command, which the hook serves until the
    # process exits (the reactor's "after shutdown" below).
    if rt.podman is not None:
        rt.podman.service.stop()


def _start_wan(rt: Runtime) -> None:
    """Make the installation's WAN (blocking, once, before the local clouds that share it)."""
    from resilin.provisioners.localcloud import wan

    settings = rt.settings
    name = settings.wan_network or wan.default_network(installation_id(settings.home))
    rt.wan = wan.ensure(name, settings.wan_subnet)
    log.info("local clouds' WAN: network %s, subnet %s", rt.wan.network, rt.wan.subnet)


def _stop_wan(rt: Runtime) -> None:
    """Remove the WAN once no container uses it (instances with public addresses keep it)."""
    from resilin.provisioners.localcloud import wan

    if rt.wan is not None and not wan.remove_if_unused(rt.wan.network):
        log.info("the WAN network %s stays: instances are attached to it", rt.wan.network)


def _write_local_cloud_access(rt: Runtime) -> None:
    local_runtime.write(
        rt.settings.home,
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
            for name, r in rt.local_clouds.items()
        ],
    )


def _serve_storage(rt: Runtime) -> list[IListeningPort]:
    from resilin.storage.server import make_site

    settings = rt.settings
    # Storage also knows the clusters' own temporary credentials (resilin/cluster/cluster_credentials.py);
    # the EMR API and the local clouds' endpoints know only the configured keys.
    cluster_credentials = ClusterCredentials(rt.redis.client)

    def storage_lookup(access_key: str) -> Credentials | None:
        return settings.credentials(access_key) or cluster_credentials.lookup(access_key)

    site = make_site(
        settings.data_dir / "storage", storage_lookup, settings.region, limits=settings.http_limits
    )
    ports = [listen(site, settings.bind_host, settings.storage_port)]
    for runtime in rt.local_clouds.values():
        if settings.bind_host not in ("0.0.0.0", "::", runtime.gateway):  # a wildcard covers the gateway
            # A podman bridge gets its gateway address only when its first container starts.
            ports.append(listen(site, runtime.gateway, settings.storage_port, freebind=True))
    return ports


def _serve_api(rt: Runtime) -> list[IListeningPort]:
    from resilin.api.server import make_site

    settings = rt.settings
    site = make_site(rt.emr_service, settings.credentials, settings.region, limits=settings.http_limits)
    return [listen(site, settings.api_host, settings.api_port)]


def _serve_console(rt: Runtime) -> list[IListeningPort]:
    """The web console and, on a port of its own, its clusters' web UIs (resilin/console)."""
    from resilin.api.dispatch import Dispatcher
    from resilin.aws.replay import SignatureLedger
    from resilin.cluster.bootstrap import storage_client
    from resilin.console import clouds_view, site, ui_site
    from resilin.console.sessions import ConsoleSessions, Session
    from resilin.jobflows.caller import Caller
    from resilin.jobflows.documents import ClusterDoc

    settings = rt.settings
    offers = offered_types(settings)

    def log_storage(cluster: ClusterDoc, session: Session) -> object:
        # Where the cluster's nodes shipped their logs: its cloud's external S3 service, or Resilin's.
        masters = [i for i in rt.store.instances_of(cluster["id"]) if i["role"] == "MASTER"]
        cloud = settings.cloud(masters[0]["cloud"] if masters else settings.default_cloud)
        creds = settings.credentials(session.access_key)
        assert creds is not None  # the session was checked against the configured keys
        if cloud.storage is None:
            own = f"http://{config_module.connect_address(settings.bind_host)}:{settings.storage_port}"
            return storage_client(own, creds, settings.region)
        external = cloud.storage.credentials_for(cluster["account"])
        if external is None:
            raise RuntimeError(f"cloud {cloud.name}'s storage has no keys for account {cluster['account']}")
        return storage_client(
            cloud.storage.endpoint, external, cloud.storage.region, cloud.storage.path_style
        )

    def clouds_page(caller: Caller) -> dict:
        return clouds_view.clouds_page(settings, rt.store, offers(), caller)

    context = site.ConsoleContext(
        lookup=settings.credentials,
        region=settings.region,
        store=rt.store,
        sessions=ConsoleSessions(rt.redis.client),
        ledger=SignatureLedger(rt.redis.client),
        dispatcher=Dispatcher(rt.emr_service),
        offers=offers,
        live_master=lambda cid: rt.orchestrator.live_master(cid),
        log_storage=log_storage,
        clouds_page=clouds_page,
        ui_port=settings.console_ui,
    )
    ports = [listen(site.make_site(context, settings.http_limits), settings.api_host, settings.console_port)]
    ports.append(
        listen(ui_site.make_site(context, settings.http_limits), settings.api_host, settings.console_ui)
    )
    host = config_module.connect_address(settings.api_host)
    log.info(
        "web console on http://%s:%d (clusters' web UIs on port %d)",
        host,
        settings.console_port,
        settings.console_ui,
    )
    return ports


def _start_orchestrator(rt: Runtime) -> None:
    settings, store = rt.settings, rt.store
    clouds = CloudRegistry(settings, rt.local_clouds)

    def credentials_for(account: str) -> Credentials:
        return next(c for c in settings.accounts if c.account_id == account)

    orchestrator = Orchestrator(store, clouds, credentials_for, settings.home, settings.region)
    reconciler = Reconciler(
        store, clouds.names, clouds, installation_id(settings.home), settings.reconcile_interval
    )
    rt.orchestrator, rt.reconciler = orchestrator, reconciler

    def recover() -> None:
        # Off the reactor thread: recovery calls the local clouds, which this reactor serves.
        try:
            orchestrator.recover()
        finally:
            rt.recovered.set()

    reactor.callWhenRunning(reactor.callInThread, recover)


def services(settings: Settings) -> Runtime:
    """The services of ``resilin server``, in the order they start."""
    rt = Runtime(settings)
    add = rt.services.addService
    rt.redis = RedisService(settings.redis_url, settings.home)
    add(rt.redis)
    ports_of_clouds = config_module.local_cloud_ports(settings)
    if any(cloud.kind == "local" for cloud in settings.clouds):
        add(CallService("WAN", lambda: _start_wan(rt), lambda: _stop_wan(rt)))
        add(
            CallService(
                "container engine", lambda: _start_container_engine(rt), lambda: _stop_container_engine(rt)
            )
        )
    for cloud in settings.clouds:
        if cloud.kind == "local":
            serve = partial(_serve_local_cloud, rt, cloud, ports_of_clouds[cloud.name])
            add(ListeningService(f"local cloud {cloud.name}", serve))
    add(CallService("local cloud access", lambda: _write_local_cloud_access(rt),
                    lambda: local_runtime.remove(settings.home)))  # fmt: skip
    add(ListeningService("storage", lambda: _serve_storage(rt)))
    add(ListeningService("EMR API", lambda: _serve_api(rt)))
    add(CallService("orchestrator", lambda: _start_orchestrator(rt)))
    if settings.console_port:
        add(ListeningService("web console", lambda: _serve_console(rt)))
    # Both loops begin once recovery has run: clusters left by a previous run are settled first.
    add(LoopInThread("orchestrator loop", 0, lambda: rt.orchestrator.dispatch_next(1), after=rt.recovered))
    # A reconcile_interval of 0 or less sweeps once, at start.
    add(LoopInThread("reconciliation", settings.reconcile_interval, lambda: rt.reconciler.sweep(),
                     after=rt.recovered, once=settings.reconcile_interval <= 0))  # fmt: skip
    return rt


def start(settings: Settings) -> Runtime:
    """Start every service in this process's reactor (call before ``reactor.run()``)."""
    # Settings made without load() are checked too: nothing may start with the reserved account.
    config_module.check_accounts(settings.accounts, str(settings.home / "resilin.toml"))
    private_home(settings.home)
    rt = services(settings)
    rt.services.startService()
    reactor.addSystemEventTrigger("before", "shutdown", rt.services.stopService)
    return rt


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
    runtime = start(settings)
    log.info("EMR API on http://%s:%d, storage on http://%s:%d",
             settings.api_host, settings.api_port, settings.bind_host, settings.storage_port)  # fmt: skip
    reactor.suggestThreadPoolSize(32)
    # What `resilin server`'s parent (tests, the demo) waits for, as with every service of Resilin.
    api_url = f"http://{config_module.connect_address(settings.api_host)}:{runtime.api_port()}"
    reactor.callWhenRunning(print, f"listening on {api_url}", flush=True)
    if settings.console_port:
        console = f"http://{config_module.connect_address(settings.api_host)}:{settings.console_port}"
        reactor.callWhenRunning(
            print, f"web console on {console} (resilin console-url: a sign-in link)", flush=True
        )
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
