package main

// The configuration file in WireGuard's INI format, as `wg setconf` reads it: an [Interface]
// section (PrivateKey, ListenPort) and one [Peer] section per remote gateway.  Error messages
// name the line and the key, never a value: a value may be a private key.

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Key is a Curve25519 key (private, public or pre-shared), 32 bytes.
type Key [32]byte

// Hex is the key as the UAPI protocol writes it.
func (k Key) Hex() string { return hex.EncodeToString(k[:]) }

// Peer is one [Peer] section.
type Peer struct {
	PublicKey           Key
	PresharedKey        *Key
	AllowedIPs          []netip.Prefix
	Endpoint            string // "ip:port" once resolved, "" for a peer that dials in
	PersistentKeepalive int    // seconds, 0 = off
}

// Config is the whole file.
type Config struct {
	PrivateKey Key
	ListenPort int // 0 = any
	Peers      []Peer
}

func parseKey(value string) (Key, error) {
	var k Key
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(raw) != len(k) {
		return k, fmt.Errorf("not a base64 key of 32 bytes")
	}
	copy(k[:], raw)
	return k, nil
}

func parseAllowedIPs(value string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			addr, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is no address or prefix", item)
			}
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		prefix, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q is no address or prefix", item)
		}
		out = append(out, prefix.Masked())
	}
	return out, nil
}

// resolveEndpoint turns "host:port" (or "[v6]:port") into "ip:port", as wg does once at set-up.
func resolveEndpoint(value string) (string, error) {
	addr, err := net.ResolveUDPAddr("udp", value)
	if err != nil {
		return "", fmt.Errorf("%q: %v", value, err)
	}
	ap := addr.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), nil
}

// ParseConfig reads the INI text.  Unknown sections and keys are errors, as with `wg setconf`
// (wg-quick's Address, DNS, MTU… do not belong in this file).
func ParseConfig(r io.Reader) (*Config, error) {
	cfg := &Config{}
	section := ""
	var peer *Peer
	seenPrivateKey := false
	scanner := bufio.NewScanner(r)
	lineNo := 0
	for scanner.Scan() {
		lineNo++
		line := scanner.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			switch section {
			case "interface":
			case "peer":
				cfg.Peers = append(cfg.Peers, Peer{})
				peer = &cfg.Peers[len(cfg.Peers)-1]
			default:
				return nil, fmt.Errorf("line %d: unknown section", lineNo)
			}
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			return nil, fmt.Errorf("line %d: no key = value", lineNo)
		}
		name := strings.TrimSpace(line[:eq])
		key := strings.ToLower(name)
		value := strings.TrimSpace(line[eq+1:])
		fail := func(err error) error { return fmt.Errorf("line %d: %s: %v", lineNo, name, err) }
		var err error
		switch {
		case section == "interface" && key == "privatekey":
			cfg.PrivateKey, err = parseKey(value)
			seenPrivateKey = err == nil
		case section == "interface" && key == "listenport":
			cfg.ListenPort, err = strconv.Atoi(value)
			if err == nil && (cfg.ListenPort < 0 || cfg.ListenPort > 65535) {
				err = fmt.Errorf("out of range")
			}
		case section == "peer" && key == "publickey":
			peer.PublicKey, err = parseKey(value)
		case section == "peer" && key == "presharedkey":
			var k Key
			k, err = parseKey(value)
			peer.PresharedKey = &k
		case section == "peer" && key == "allowedips":
			var prefixes []netip.Prefix
			prefixes, err = parseAllowedIPs(value)
			peer.AllowedIPs = append(peer.AllowedIPs, prefixes...)
		case section == "peer" && key == "endpoint":
			peer.Endpoint, err = resolveEndpoint(value)
		case section == "peer" && key == "persistentkeepalive":
			if value == "off" {
				peer.PersistentKeepalive = 0
			} else {
				peer.PersistentKeepalive, err = strconv.Atoi(value)
				if err == nil && (peer.PersistentKeepalive < 0 || peer.PersistentKeepalive > 65535) {
					err = fmt.Errorf("out of range")
				}
			}
		case section == "":
			return nil, fmt.Errorf("line %d: outside any section", lineNo)
		default:
			return nil, fmt.Errorf("line %d: unknown key %s in [%s]", lineNo, name, section)
		}
		if err != nil {
			return nil, fail(err)
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	if !seenPrivateKey {
		return nil, fmt.Errorf("[Interface] has no PrivateKey")
	}
	seen := map[Key]bool{}
	for i, p := range cfg.Peers {
		if p.PublicKey == (Key{}) {
			return nil, fmt.Errorf("peer %d has no PublicKey", i+1)
		}
		if seen[p.PublicKey] {
			return nil, fmt.Errorf("peer %d repeats the PublicKey of an earlier peer", i+1)
		}
		seen[p.PublicKey] = true
	}
	return cfg, nil
}
