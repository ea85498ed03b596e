"""A client of a local cloud's admin resource (``/admin/…``): inject faults, kill instances, shape the WAN."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class AdminClient:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        self.endpoint = endpoint.rstrip("/")
        self.credentials = Credentials(access_key, secret_key)
        self.region = region

    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        url = f"{self.endpoint}/admin/{path}"
        data = json.dumps(body).encode() if body is not None else b""
        request = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
        SigV4Auth(self.credentials, "ec2", self.region).add_auth(request)
        http = urllib.request.Request(url, data=data or None, headers=dict(request.headers), method=method)
        try:
            with urllib.request.urlopen(http, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                error = json.loads(payload)["Error"]
            except (ValueError, KeyError, TypeError):
                error = {"Code": "HTTPError", "Message": payload.decode(errors="replace")}
            raise AdminError(err.code, error.get("Code", ""), error.get("Message", "")) from None

    def faults(self) -> dict[str, Any]:
        return self._request("GET", "faults")

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change faults, e.g. ``set_faults(insufficient_capacity=2)`` or ``set_faults(capacity=1)``."""
        return self._request("PUT", "faults", changes)

    def clear_faults(self) -> dict[str, Any]:
        return self._request("DELETE", "faults")

    def shape_wan(
        self, instance_id: str, rate_mbit: float | None = None, delay_ms: float = 0
    ) -> dict[str, Any]:
        """Limit the instance's WAN link to ``rate_mbit`` each way and delay it ``delay_ms`` each way
        (a round trip takes twice that more); it needs a public address.  What is left out is off."""
        changes: dict[str, float] = {}
        if rate_mbit is not None:
            changes["rate_mbit"] = rate_mbit
        if delay_ms or rate_mbit is None:
            changes["delay_ms"] = delay_ms
        return self._request("PUT", f"instances/{instance_id}/wan", changes)

    def wan_shaping(self, instance_id: str) -> dict[str, Any]:
        return self._request("GET", f"instances/{instance_id}/wan")

    def clear_wan_shaping(self, instance_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"instances/{instance_id}/wan")

    def kill(self, instance_id: str) -> dict[str, Any]:
        return self._request("POST", f"instances/{instance_id}/kill", {})
