package main

// The configuration as a UAPI "set" request (https://www.wireguard.com/xplatform/), written as a
// change from the device's current state so that a reload keeps the sessions of the peers that
// stay (as `wg syncconf` does): peers no longer in the file are removed, the others are
// updated in place with their allowed IPs replaced.

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// deviceState is what a reload needs from the device's "get" answer.
type deviceState struct {
	ListenPort int
	Peers      map[string]bool // public keys, hex
}

func parseDeviceState(get string) deviceState {
	state := deviceState{Peers: map[string]bool{}}
	scanner := bufio.NewScanner(strings.NewReader(get))
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), "=")
		if !ok {
			continue
		}
		switch key {
		case "listen_port":
			state.ListenPort, _ = strconv.Atoi(value)
		case "public_key":
			state.Peers[value] = true
		}
	}
	return state
}

// setRequest is the UAPI text that takes a device from state to cfg.
func setRequest(cfg *Config, state deviceState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\n", cfg.PrivateKey.Hex())
	if cfg.ListenPort != state.ListenPort {
		// Setting the port rebinds the socket: only when it changes.
		fmt.Fprintf(&b, "listen_port=%d\n", cfg.ListenPort)
	}
	wanted := map[string]bool{}
	for _, p := range cfg.Peers {
		wanted[p.PublicKey.Hex()] = true
	}
	for key := range state.Peers {
		if !wanted[key] {
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", key)
		}
	}
	for _, p := range cfg.Peers {
		fmt.Fprintf(&b, "public_key=%s\n", p.PublicKey.Hex())
		var psk Key
		if p.PresharedKey != nil {
			psk = *p.PresharedKey
		}
		fmt.Fprintf(&b, "preshared_key=%s\n", psk.Hex())
		if p.Endpoint != "" {
			fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
		}
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", p.PersistentKeepalive)
		b.WriteString("replace_allowed_ips=true\n")
		for _, prefix := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", prefix)
		}
	}
	return b.String()
}
