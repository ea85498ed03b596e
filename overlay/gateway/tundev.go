package main

// Attaching to the TUN device.  The cloud (or resilin-overlay-gateway on a VM) makes tun0 with
// IFF_TUN|IFF_NO_PI|IFF_VNET_HDR, owned by uid 0, and sets its MTU, addresses and routes.  A
// process of that uid may then attach to it with TUNSETIFF without any capability; it cannot
// set the MTU, which is why tun.CreateTUNFromFile (it always sets the MTU) is not used and the
// device is not watched through netlink: the gateway brings the WireGuard device up itself.
// With IFF_VNET_HDR the library turns on the TUN's offloads (TSO/GSO one way, GRO the other),
// which is most of its speed.

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

const cloneDevice = "/dev/net/tun"

func deviceExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

// openTUN attaches to the TUN device called name, or creates it (a non-persistent device that
// goes with the process) when it is missing and the process may create one.  created says which.
func openTUN(name string, mtu int) (dev tun.Device, created bool, err error) {
	existed := deviceExists(name)
	fd, err := unix.Open(cloneDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", cloneDevice, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, false, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) && !existed {
			return nil, false, fmt.Errorf("%s does not exist and this process may not create it (no CAP_NET_ADMIN)", name)
		}
		if errors.Is(err, unix.EPERM) {
			return nil, false, fmt.Errorf("attach to %s: not its owner (the device must be made with user %d)", name, os.Geteuid())
		}
		return nil, false, fmt.Errorf("attach to %s: %w", name, err)
	}
	// The library's own constructor sets the descriptor non-blocking and enables the offloads.
	dev, _, err = tun.CreateUnmonitoredTUNFromFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, false, fmt.Errorf("attach to %s: %w", name, err)
	}
	if !existed {
		if err := setMTU(name, mtu); err != nil {
			dev.Close()
			return nil, false, err
		}
	}
	return dev, !existed, nil
}

func setMTU(name string, mtu int) error {
	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(sock, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("set the MTU of %s: %w", name, err)
	}
	return nil
}
