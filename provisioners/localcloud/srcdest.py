"""SourceDestCheck off: an instance that forwards, with a TUN device the host made for it.

On EC2, turning an instance's source/destination check off lets it route traffic
that is neither from nor to itself (a NAT or VPN gateway).  Here that means, in
the instance's network namespace: IP forwarding on, and ``tun0`` made by the
host as a persistent TUN device owned by uid 0, with ``vnet_hdr`` so a userspace
tunnel gets offloads.  The instance (root inside, without CAP_NET_ADMIN) can
attach to that device through ``/dev/net/tun`` but can neither make another nor
change its MTU or addresses, so the host sets those.  All blocking: run off the
reactor.  Both directions are idempotent, as they run again after every start
of the instance (a restarted container has a new namespace).
"""

from __future__ import annotations

from resilin.provisioners.localcloud import netns

TUN = "tun0"
MTU = 1420  # the overlay's MTU: room for WireGuard's headers inside the cloud network's 1500


def has_tun(pid: int) -> bool:
    return bool(netns.run(pid, ["ip", "-o", "link", "show", "dev", TUN], check=False).strip())


def apply(pid: int, check: bool) -> None:
    """Make the instance in ``pid``'s namespace forward (``check`` False) or not (True)."""
    if check:
        if has_tun(pid):
            # Unregistered even while a process holds it open (``ip tuntap del`` would only clear
            # its persist flag and leave it to that process).
            netns.run(pid, ["ip", "link", "del", "dev", TUN])
        netns.run(pid, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
        return
    netns.run(pid, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    if not has_tun(pid):
        netns.run(pid, ["ip", "tuntap", "add", "dev", TUN, "mode", "tun", "user", "0", "vnet_hdr"])
    netns.run(pid, ["ip", "link", "set", "dev", TUN, "mtu", str(MTU), "up"])
