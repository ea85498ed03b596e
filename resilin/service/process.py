"""A ``resilin server`` child process with its own home, ports, accounts and local cloud (tests, benchmarks)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from resilin.aws.sigv4 import Credentials
from resilin.demo import Endpoints
from resilin.service.children import Child, stop_child
from resilin.service.ports import free_port
from resilin.settings.config import new_credentials


@dataclass
class ResilinProcess:
    home: Path
    api_port: int
    storage_port: int
    accounts: list[Credentials]
    cloud: str
    process: subprocess.Popen | None = None
    localcloud_port: int = 0  # the local cloud's EC2 endpoint, where accounts import their key pairs
    node_image: str = "localhost/resilin-node:latest"
    bind_host: str = "127.0.0.1"  # storage's (and by default every service's) listening address
    console_port: int = 0  # the web console; 0: none
    console_ui_port: int = 0  # its clusters' web UIs (chosen with the console's)

    def endpoints(self, account: int = 0) -> Endpoints:
        creds = self.accounts[account]
        return Endpoints(
            api=f"http://127.0.0.1:{self.api_port}",
            storage=f"http://127.0.0.1:{self.storage_port}",
            access_key=creds.access_key,
            secret_key=creds.secret_key,
        )

    def write_config(self, subnet: str, redis_url: str = "") -> None:
        self.localcloud_port = self.localcloud_port or free_port()
        if self.console_port:
            self.console_ui_port = self.console_ui_port or free_port()
        accounts = "".join(
            f'[[accounts]]\naccount_id = "{c.account_id}"\naccess_key = "{c.access_key}"\nsecret_key = "{c.secret_key}"\n\n'
            for c in self.accounts
        )
        (self.home / "resilin.toml").write_text(
            f'bind_host = "{self.bind_host}"\napi_port = {self.api_port}\nstorage_port = {self.storage_port}\n'
            f'localcloud_port = {self.localcloud_port}\nregion = "us-east-1"\ndefault_cloud = "{self.cloud}"\n'
            + (
                f"console_port = {self.console_port}\nconsole_ui_port = {self.console_ui_port}\n"
                if self.console_port
                else ""
            )
            + (f'redis_url = "{redis_url}"\n' if redis_url else "")
            + f'node_image = "{self.node_image}"\n\n{accounts}'
            f'[[clouds]]\nname = "{self.cloud}"\nkind = "local"\nsubnet = "{subnet}"\n'
        )

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    def start(self, timeout: float = 120) -> None:
        child = Child(
            "resilin server",
            [sys.executable, "-m", "resilin", "--home", str(self.home), "server"],
            self.home / "server.log",
            new_session=True,
        )
        child.start(timeout)  # ChildFailed (a RuntimeError) with the end of server.log if it did not
        self.process = child.process

    def stop(self) -> None:
        if self.process is None:
            return
        stop_child(self.process, 60)
        self.process = None

    def log_tail(self, lines: int = 60) -> str:
        path = self.home / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def new_process(
    home: Path,
    cloud: str,
    subnet: str,
    accounts: int = 2,
    node_image: str = "localhost/resilin-node:latest",
    console: bool = False,
) -> ResilinProcess:
    proc = ResilinProcess(
        home=home,
        api_port=free_port(),
        storage_port=free_port(),
        accounts=[new_credentials(f"{i + 1:012d}") for i in range(accounts)],
        cloud=cloud,
        node_image=node_image,
        console_port=free_port() if console else 0,
    )
    proc.write_config(subnet)
    return proc


def cloud_containers(cloud: str) -> list[str]:
    done = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=resilin.cloud={cloud}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()
