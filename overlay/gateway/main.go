// resilin-overlay: a WireGuard gateway in userspace (wireguard-go as a library) on a TUN device
// that the host made, so that it runs without CAP_NET_ADMIN.
//
//	resilin-overlay --tun tun0 --config /etc/resilin/overlay/tun0.conf
//	resilin-overlay --check --config FILE   (parse the file only)
//
// Runs in the foreground.  SIGHUP re-reads the configuration and replaces the peer set; SIGTERM
// (or SIGINT) stops.  Keys are never logged.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
)

func loadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Mode().Perm()&0o077 != 0 {
		log.Printf("warning: %s is readable by others than its owner (mode %o)", path, info.Mode().Perm())
	}
	cfg, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// apply brings the device to cfg, keeping the sessions of the peers that stay.
func apply(dev *device.Device, cfg *Config) error {
	current, err := dev.IpcGet()
	if err != nil {
		return err
	}
	return dev.IpcSet(setRequest(cfg, parseDeviceState(current)))
}

func main() {
	tunName := flag.String("tun", "tun0", "the TUN device to attach to (or create, given CAP_NET_ADMIN)")
	configPath := flag.String("config", "/etc/resilin/overlay/tun0.conf", "WireGuard configuration (wg setconf's format)")
	mtu := flag.Int("mtu", device.DefaultMTU, "the MTU of a device this program creates itself")
	verbose := flag.Bool("verbose", false, "log WireGuard's handshakes and the like")
	check := flag.Bool("check", false, "only check the configuration file, and exit")
	flag.Parse()
	log.SetPrefix("resilin-overlay: ")
	log.SetFlags(log.LstdFlags)

	cfg, err := loadConfig(*configPath)
	if *check {
		if err != nil {
			fmt.Fprintf(os.Stderr, "resilin-overlay: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	tunDev, created, err := openTUN(*tunName, *mtu)
	if err != nil {
		log.Fatal(err)
	}
	level := device.LogLevelError
	if *verbose {
		level = device.LogLevelVerbose
	}
	dev := device.NewDevice(tunDev, conn.NewDefaultBind(), device.NewLogger(level, fmt.Sprintf("(%s) ", *tunName)))
	if err := apply(dev, cfg); err != nil {
		dev.Close()
		log.Fatalf("configure %s: %v", *tunName, err)
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		log.Fatalf("bring %s up: %v", *tunName, err)
	}
	how := "attached to"
	if created {
		how = "created"
	}
	log.Printf("%s %s, UDP port %d, %d peers", how, *tunName, cfg.ListenPort, len(cfg.Peers))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	for {
		select {
		case sig := <-signals:
			if sig != syscall.SIGHUP {
				log.Printf("%v: stopping", sig)
				dev.Close()
				return
			}
			cfg, err := loadConfig(*configPath)
			if err == nil {
				err = apply(dev, cfg)
			}
			if err != nil {
				log.Printf("reload failed, the previous configuration stays: %v", err)
				continue
			}
			log.Printf("reloaded: UDP port %d, %d peers", cfg.ListenPort, len(cfg.Peers))
		case <-dev.Wait():
			log.Fatalf("%s: the device closed", *tunName)
		}
	}
}
