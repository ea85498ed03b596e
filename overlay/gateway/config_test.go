package main

import (
	"strings"
	"testing"
)

const (
	privKey = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
	pubKey1 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	pubKey2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
)

func TestParsesWgSetconfFormat(t *testing.T) {
	text := `[Interface]
PrivateKey = ` + privKey + `
ListenPort = 51820

[Peer]   # a hub
PublicKey = ` + pubKey1 + `
AllowedIPs = 10.0.1.5/32, 10.0.1.6
Endpoint = 192.0.2.1:51820
PersistentKeepalive = 25

[Peer]
PublicKey = ` + pubKey2 + `
AllowedIPs = 10.0.2.7/32
AllowedIPs = 10.0.2.8/32
`
	cfg, err := ParseConfig(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenPort != 51820 || len(cfg.Peers) != 2 {
		t.Fatalf("got %+v", cfg)
	}
	p := cfg.Peers[0]
	if p.Endpoint != "192.0.2.1:51820" || p.PersistentKeepalive != 25 || len(p.AllowedIPs) != 2 || p.AllowedIPs[1].String() != "10.0.1.6/32" {
		t.Fatalf("peer 1: %+v", p)
	}
	if cfg.Peers[1].Endpoint != "" || len(cfg.Peers[1].AllowedIPs) != 2 {
		t.Fatalf("peer 2: %+v", cfg.Peers[1])
	}
}

func TestErrorsNeverQuoteAKey(t *testing.T) {
	secret := privKey[:40] + "AAAA" // 33 bytes: not a key
	for _, text := range []string{
		"[Interface]\nPrivateKey = " + secret + "\n",
		"[Interface]\nPrivateKey = " + secret[:10] + "\n",
		"PrivateKey = " + secret + "\n",
		"[Interface]\nAddress = " + secret + "\n",
	} {
		_, err := ParseConfig(strings.NewReader(text))
		if err == nil {
			t.Fatalf("accepted %q", text)
		}
		if strings.Contains(err.Error(), secret[:10]) {
			t.Fatalf("error quotes the value: %v", err)
		}
	}
}

func TestRefusesIncompleteFiles(t *testing.T) {
	for _, text := range []string{
		"[Interface]\nListenPort = 51820\n",
		"[Interface]\nPrivateKey = " + privKey + "\n[Peer]\nAllowedIPs = 10.0.0.1/32\n",
		"[Interface]\nPrivateKey = " + privKey + "\n[Peer]\nPublicKey = " + pubKey1 + "\n[Peer]\nPublicKey = " + pubKey1 + "\n",
		"[Interface]\nPrivateKey = " + privKey + "\nListenPort = 70000\n",
		"[Interface]\nPrivateKey = " + privKey + "\n[Peer]\nPublicKey = " + pubKey1 + "\nAllowedIPs = 10.0.0.300/32\n",
	} {
		if _, err := ParseConfig(strings.NewReader(text)); err == nil {
			t.Fatalf("accepted %q", text)
		}
	}
}

func TestReloadRemovesGonePeersAndKeepsThePort(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader("[Interface]\nPrivateKey = " + privKey +
		"\nListenPort = 51820\n[Peer]\nPublicKey = " + pubKey2 + "\nAllowedIPs = 10.0.2.7/32\n"))
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := parseKey(pubKey1)
	k2, _ := parseKey(pubKey2)
	state := parseDeviceState("listen_port=51820\npublic_key=" + k1.Hex() + "\nallowed_ip=10.0.1.5/32\npublic_key=" + k2.Hex() + "\n")
	req := setRequest(cfg, state)
	if strings.Contains(req, "listen_port=") {
		t.Fatalf("rebinds an unchanged port:\n%s", req)
	}
	if !strings.Contains(req, "public_key="+k1.Hex()+"\nremove=true\n") {
		t.Fatalf("keeps a peer gone from the file:\n%s", req)
	}
	if !strings.Contains(req, "public_key="+k2.Hex()+"\n") || !strings.Contains(req, "replace_allowed_ips=true\nallowed_ip=10.0.2.7/32\n") {
		t.Fatalf("does not update the staying peer:\n%s", req)
	}
	first := setRequest(cfg, parseDeviceState(""))
	if !strings.Contains(first, "listen_port=51820\n") || strings.Contains(first, "remove=true") {
		t.Fatalf("first set-up:\n%s", first)
	}
}
