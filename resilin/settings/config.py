"""Resilin's configuration: where data lives, which ports services use, accounts and clouds.

The configuration is a TOML file (``$RESILIN_HOME/resilin.toml``).  On first use a
default one is written with a freshly generated access key for one account, and
the key is also written in the AWS CLI's credentials format so that
``aws --profile resilin`` and boto3 can use it directly.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import string
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from resilin.aws.httplimits import HttpLimits
from resilin.aws.sigv4 import Credentials
from resilin.settings.cloud_config import CloudConfig, CloudConfigError, parse_clouds
from resilin.settings.private_files import private_dir

T = TypeVar("T")

DEFAULT_HOME = Path(os.environ.get("RESILIN_HOME", Path.home() / ".resilin"))
DEFAULT_REGION = "us-east-1"
# The local clouds' own account: their operator (the /admin resource) and the account Resilin
# provisions every cluster under, whoever asked for it.  No configured account may have it.
LOCAL_CLOUD_ACCOUNT = "000000000000"


class ConfigError(Exception):
    """The configuration file is missing something or has a value of the wrong kind."""


@dataclass(frozen=True)
class Settings:
    home: Path
    bind_host: str = "127.0.0.1"  # storage's address; EC2 clouds' instances must reach it
    api_bind_host: str = ""  # the EMR API's address: bind_host unless set
    localcloud_bind_host: str = ""  # the local clouds' EC2 endpoints: bind_host unless set
    api_port: int = 8998
    storage_port: int = 8999
    localcloud_port: int = 8997
    # The web console (resilin/console) on the API's address; 0: no console.  Its clusters' web UIs
    # (HDFS, YARN, Spark) are served on a port of their own, a separate origin (resilin/console/ui_proxy.py).
    console_port: int = 0
    console_ui_port: int = 0  # 0 with a console: console_port + 1
    region: str = DEFAULT_REGION
    redis_url: str = ""  # empty: Resilin starts a private Redis server in its home
    accounts: tuple[Credentials, ...] = ()
    clouds: tuple[CloudConfig, ...] = ()
    default_cloud: str = "local"
    node_image: str = "localhost/resilin-node:latest"
    reconcile_interval: float = (
        300.0  # seconds between sweeps for leftovers of ended clusters; 0: at start only
    )
    http_limits: HttpLimits = HttpLimits()  # [http]: deadlines and connection caps of every service
    # The WAN between this installation's local clouds (public addresses): a podman network of its own.
    wan_network: str = ""  # empty: resilin-wan-<installation id>
    wan_subnet: str = ""  # empty: a free /24 of 100.64.0.0/10 chosen when the network is made
    extra: dict = field(default_factory=dict)

    @property
    def api_host(self) -> str:
        return self.api_bind_host or self.bind_host

    @property
    def console_ui(self) -> int:
        """The port of the clusters' web UIs behind the console (0: no console)."""
        if not self.console_port:
            return 0
        return self.console_ui_port or self.console_port + 1

    @property
    def localcloud_host(self) -> str:
        return self.localcloud_bind_host or self.bind_host

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def cloud(self, name: str) -> CloudConfig:
        for cloud in self.clouds:
            if cloud.name == name:
                return cloud
        raise KeyError(name)

    def credentials(self, access_key: str) -> Credentials | None:
        for creds in self.accounts:
            if creds.access_key == access_key:
                return creds
        return None


def _random_key(length: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_credentials(account_id: str) -> Credentials:
    """A fresh access key pair shaped like AWS's (AKIA…, 40-character secret)."""
    access = "AKIA" + _random_key(16, string.ascii_uppercase + string.digits)
    secret = _random_key(40, string.ascii_letters + string.digits + "/+")
    return Credentials(access, secret, account_id)


DEFAULT_CONFIG = """\
# Resilin configuration.  See README.md for every setting.
bind_host = "127.0.0.1"
api_port = 8998
storage_port = 8999
localcloud_port = 8997
console_port = 8996                       # the web console; 0: none (its clusters' web UIs: 8995)
console_ui_port = 8995
region = "us-east-1"
# redis_url = "redis://127.0.0.1:6379/0"   # unset: Resilin runs its own Redis in its home
default_cloud = "local"
# wan_subnet = "100.64.7.0/24"            # the WAN between local clouds; unset: a free /24 of 100.64.0.0/10

[[accounts]]
account_id = "{account_id}"
access_key = "{access_key}"
secret_key = "{secret_key}"

[[clouds]]
name = "local"
kind = "local"
subnet = "10.77.1.0/24"
# fallback = ["other-cloud"]              # where clusters go when this cloud has no room
# quota = {{ instances = 16 }}

# An EC2-compatible cloud (see README.md, "Clouds", for every setting):
# [[clouds]]
# name = "aws"
# region = "eu-west-1"
# profile = "work"                        # or access_key / secret_key
# image_id = "ami-0123456789abcdef0"
# ssh_cidr = "203.0.113.7/32"
# subnet_id = "subnet-0abc1234"
# private_range = "10.1.0.0/16"           # its instances' private addresses (default: subnet_id's CIDR);
#                                         # clouds of one cluster must not overlap
"""


def write_default_config(home: Path) -> Path:
    private_dir(home)
    path = home / "resilin.toml"
    account_id = LOCAL_CLOUD_ACCOUNT
    while account_id == LOCAL_CLOUD_ACCOUNT:  # a one-in-10^12 draw, but never the reserved id
        account_id = "".join(secrets.choice(string.digits) for _ in range(12))
    creds = new_credentials(account_id)
    text = DEFAULT_CONFIG.format(
        account_id=creds.account_id, access_key=creds.access_key, secret_key=creds.secret_key
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def write_aws_credentials(settings: Settings) -> Path:
    """Write the first account's key as an AWS CLI profile named ``resilin``."""
    path = settings.home / "aws-credentials"
    creds = settings.accounts[0]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            "[resilin]\n"
            f"aws_access_key_id = {creds.access_key}\n"
            f"aws_secret_access_key = {creds.secret_key}\n"
            f"region = {settings.region}\n"
        )
    return path


def check_accounts(accounts: Sequence[Credentials], where: str) -> None:
    """Refuse the account id reserved for the local clouds: a user holding it would operate them
    (/admin) and see every tenant's instances and key pairs there."""
    for i, creds in enumerate(accounts):
        if creds.account_id == LOCAL_CLOUD_ACCOUNT:
            raise ConfigError(
                f"{where}: accounts[{i}]: account_id {LOCAL_CLOUD_ACCOUNT} is reserved for Resilin's local "
                "clouds (their operator, under which every cluster's instances run); choose another id"
            )


def _require(table: dict, key: str, kind: type[T], where: str) -> T:
    if key not in table:
        raise ConfigError(f"{where}: '{key}' is required")
    value = table[key]
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: '{key}' must be a {kind.__name__}")
    return value


def _seconds(raw: dict, key: str, default: float, path: Path) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{path}: '{key}' must be a number of seconds ≥ 0")
    return float(value)


def _http_limits(table: object, path: Path) -> HttpLimits:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [http] must be a table")
    try:
        return HttpLimits.from_mapping(table, f"{path}: [http]")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


WAN_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$")


def _wan_network(raw: dict, path: Path) -> str:
    name = raw.get("wan_network", "")
    if not isinstance(name, str) or (name and not WAN_NETWORK_NAME.match(name)):
        raise ConfigError(f"{path}: 'wan_network' must be a podman network name (letters, digits, '_.-')")
    return name


def _wan_subnet(raw: dict, clouds: Sequence[CloudConfig], path: Path) -> str:
    """The configured WAN subnet, checked: IPv4, not public, apart from every local cloud's subnet."""
    subnet = raw.get("wan_subnet", "")
    if subnet == "":
        return ""
    try:
        network = ipaddress.IPv4Network(subnet) if isinstance(subnet, str) else None
    except ValueError:
        network = None
    if network is None:
        raise ConfigError(
            f"{path}: 'wan_subnet' must be an IPv4 network such as '100.64.7.0/24', not {subnet!r}"
        )
    if network.num_addresses < 8 or network.is_global:
        raise ConfigError(
            f"{path}: 'wan_subnet' {network} must be a private or shared (100.64.0.0/10) network "
            "of at least 8 addresses"
        )
    for cloud in clouds:
        if cloud.kind == "local" and network.overlaps(ipaddress.IPv4Network(cloud.subnet)):
            raise ConfigError(
                f"{path}: 'wan_subnet' {network} overlaps the subnet of local cloud {cloud.name} ({cloud.subnet})"
            )
    return str(network)


def load(home: Path | None = None, path: Path | None = None) -> Settings:
    """Read the configuration, writing a default one first if there is none."""
    home = Path(home or DEFAULT_HOME)
    path = path or home / "resilin.toml"
    if not path.exists():
        write_default_config(home)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None

    accounts = []
    for i, table in enumerate(raw.get("accounts", [])):
        where = f"{path}: accounts[{i}]"
        accounts.append(
            Credentials(
                access_key=_require(table, "access_key", str, where),
                secret_key=_require(table, "secret_key", str, where),
                account_id=_require(table, "account_id", str, where),
            )
        )
    if not accounts:
        raise ConfigError(f"{path}: at least one [[accounts]] entry is required")
    check_accounts(accounts, str(path))

    try:
        clouds = parse_clouds(raw.get("clouds", []), str(path))
    except CloudConfigError as exc:
        raise ConfigError(str(exc)) from None
    default_cloud = raw.get("default_cloud", clouds[0].name if clouds else "local")
    if clouds and default_cloud not in {c.name for c in clouds}:
        raise ConfigError(f"{path}: default_cloud '{default_cloud}' is not one of the [[clouds]]")

    known = {
        "bind_host",
        "api_bind_host",
        "localcloud_bind_host",
        "api_port",
        "storage_port",
        "localcloud_port",
        "console_port",
        "console_ui_port",
        "region",
        "redis_url",
        "default_cloud",
        "node_image",
        "reconcile_interval",
        "http",
        "wan_network",
        "wan_subnet",
        "accounts",
        "clouds",
    }
    return Settings(
        home=home,
        bind_host=raw.get("bind_host", "127.0.0.1"),
        api_bind_host=raw.get("api_bind_host", ""),
        localcloud_bind_host=raw.get("localcloud_bind_host", ""),
        api_port=int(raw.get("api_port", 8998)),
        storage_port=int(raw.get("storage_port", 8999)),
        localcloud_port=int(raw.get("localcloud_port", 8997)),
        console_port=int(raw.get("console_port", 0)),
        console_ui_port=int(raw.get("console_ui_port", 0)),
        region=raw.get("region", DEFAULT_REGION),
        redis_url=raw.get("redis_url", ""),
        accounts=tuple(accounts),
        clouds=tuple(clouds),
        default_cloud=default_cloud,
        node_image=raw.get("node_image", "localhost/resilin-node:latest"),
        reconcile_interval=_seconds(raw, "reconcile_interval", 300.0, path),
        http_limits=_http_limits(raw.get("http", {}), path),
        wan_network=_wan_network(raw, path),
        wan_subnet=_wan_subnet(raw, clouds, path),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def local_cloud_ports(settings: Settings) -> dict[str, int]:
    """The port of each local cloud's EC2 endpoint: its own, or the next free one from localcloud_port."""
    ports: dict[str, int] = {}
    taken = {c.port for c in settings.clouds if c.kind == "local" and c.port}
    next_port = settings.localcloud_port
    for cloud in settings.clouds:
        if cloud.kind != "local":
            continue
        port = cloud.port
        if not port:  # the next port from localcloud_port that no cloud asked for by name
            while next_port in taken:
                next_port += 1
            port, next_port = next_port, next_port + 1
        ports[cloud.name] = port
    return ports


def local_images(settings: Settings, cloud: CloudConfig) -> list[str]:
    """Container images a local cloud offers: the node image and any its settings name."""
    named = [settings.node_image, cloud.image_id, *cloud.images.values()]
    return list(dict.fromkeys(ref for ref in named if ref and not ref.startswith("ami-")))


def connect_address(host: str) -> str:
    """Where a client on this host reaches a service listening on ``host`` (a wildcard: loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
