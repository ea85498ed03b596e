"""The admin API's WAN fault: an instance's WAN link limited in rate and delayed, as a slow or
distant network would be (``GET|PUT|DELETE /admin/instances/<id>/wan``, :mod:`admin`).

``{"rate_mbit": R, "delay_ms": D}``, one of them at least: R Mbit/s each way (``tbf``,
:mod:`shaping`) and D ms added each way (a delay line, :mod:`delayline`), so a round trip through
the instance's link takes 2×D ms more.  A PUT replaces the whole fault: what it leaves out is
taken off.  The instance needs a public address and must be running.  Delay lines end with their
instance: stopping, terminating, killing or detaching it from the WAN takes its line down first,
and a cloud that starts restores the wiring of lines an earlier run left.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet.threads import deferToThread

from resilin.provisioners.localcloud import delayline, shaping
from resilin.provisioners.localcloud.delayline import DelayLineError, DelayLines
from resilin.provisioners.localcloud.errors import EC2Error
from resilin.provisioners.localcloud.public_addresses import PublicAddresses

log = logging.getLogger(__name__)

MAX_RATE_MBIT = 100_000


def check(changes: Any) -> tuple[float | None, float]:
    """The rate (None: not limited) and delay a PUT asks for; EC2Error if it is not a valid one."""
    usage = 'the body must be {"rate_mbit": R, "delay_ms": D}, with one of them at least'
    if not isinstance(changes, dict) or not changes or set(changes) - {"rate_mbit", "delay_ms"}:
        raise EC2Error("InvalidParameterValue", usage)
    rate, delay = changes.get("rate_mbit"), changes.get("delay_ms", 0)
    for name, value in (("rate_mbit", rate), ("delay_ms", delay)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise EC2Error("InvalidParameterValue", f"{name} must be a number")
    if rate is not None and not 0 < rate <= MAX_RATE_MBIT:
        raise EC2Error(
            "InvalidParameterValue", f"rate_mbit must be a number of Mbit/s between 0 and {MAX_RATE_MBIT}"
        )
    if delay is None or not 0 <= delay <= delayline.MAX_DELAY_MS:
        raise EC2Error(
            "InvalidParameterValue",
            f"delay_ms must be a number of milliseconds from 0 to {delayline.MAX_DELAY_MS}",
        )
    return (float(rate) if rate is not None else None), float(delay)


class WanFaults:
    """The rate limits and delay lines of one cloud's instances' WAN links."""

    def __init__(self, public: PublicAddresses, cloud_name: str) -> None:
        self.public = public
        self.cloud_name = cloud_name
        self.delays = DelayLines(cloud_name)

    async def shape(self, instance_id: str, changes: Any) -> dict[str, Any]:
        rate, delay = check(changes)
        pid, public_ip = await self.public.wan_link(instance_id)
        try:
            await deferToThread(self._apply, instance_id, pid, public_ip, rate, delay)
        except (shaping.ShapingError, DelayLineError) as exc:
            message = f"The WAN link of {instance_id} could not be shaped: {exc}"
            raise EC2Error("InternalError", message, 500) from None
        return await self.shaping(instance_id)

    def _apply(self, instance_id: str, pid: int, public_ip: str, rate: float | None, delay: float) -> None:
        link = shaping.wan_link(pid, public_ip)
        try:
            if rate:
                shaping.shape(pid, public_ip, rate)
            else:
                shaping.clear(pid, public_ip)
            if delay:
                self.delays.set(instance_id, link.host, link.inside, pid, delay)
            else:
                self.delays.remove(instance_id, pid, link.inside)
        except Exception:
            self._clear(instance_id, pid, public_ip)  # nothing half applied
            raise

    def _clear(self, instance_id: str, pid: int, public_ip: str) -> None:
        link = shaping.wan_link(pid, public_ip)
        self.delays.remove(instance_id, pid, link.inside)
        shaping.clear(pid, public_ip)

    async def shaping(self, instance_id: str) -> dict[str, Any]:
        """What is in force: ``rate_mbit`` (None: not limited) and ``delay_ms`` (each way)."""
        pid, public_ip = await self.public.wan_link(instance_id)
        rate = await deferToThread(shaping.current, pid, public_ip)
        return {
            "InstanceId": instance_id,
            "PublicIp": public_ip,
            "rate_mbit": rate,
            "delay_ms": self.delays.delay_ms(instance_id),
        }

    async def unshape(self, instance_id: str) -> dict[str, Any]:
        pid, public_ip = await self.public.wan_link(instance_id)
        await deferToThread(self._clear, instance_id, pid, public_ip)
        return await self.shaping(instance_id)

    async def undelay(self, *instance_ids: str) -> None:
        """Take the instances' delay lines down, where they have one (they stop, end or leave the WAN)."""
        for instance_id in instance_ids:
            if self.delays.has(instance_id):
                await deferToThread(self.delays.remove, instance_id)

    async def recover(self) -> None:
        """Restore the wiring of delay lines an earlier run of this cloud left (a crash)."""
        await deferToThread(delayline.clear_leftovers, self.cloud_name)

    def stop(self) -> None:
        """Take every delay line down: the cloud stops (blocking)."""
        self.delays.remove_all()
