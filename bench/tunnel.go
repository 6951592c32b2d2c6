package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/protocol"
)

// defaultSSHConfig is the client configuration of scripts/sshd.sh, whose
// host "ci" logs in as root on this machine.
const defaultSSHConfig = "/tmp/ipp-sshd/ssh_config"

// findSSH returns the ssh host the tunnel measure goes through: $IPP_BENCH_SSH
// (with the user's own ssh configuration and IPP_SSH_ARGS), else "ci" of
// scripts/sshd.sh when it logs in. The bench must still run without one.
func findSSH() (string, error) {
	if h := os.Getenv(protocol.EnvBenchSSH); h != "" {
		return h, nil
	}
	if _, err := os.Stat(defaultSSHConfig); err != nil {
		return "", fmt.Errorf("IPP_BENCH_SSH is not set and %s does not exist (scripts/sshd.sh start)", defaultSSHConfig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ssh", "-F", defaultSSHConfig, "ci", "true").CombinedOutput(); err != nil {
		return "", fmt.Errorf("ssh -F %s ci: %v: %s", defaultSSHConfig, err, tail(out, 300))
	}
	os.Setenv(protocol.EnvSSHArgs, strings.TrimSpace(os.Getenv(protocol.EnvSSHArgs)+" -F "+defaultSSHConfig))
	return "ci", nil
}

// measureTunnel times one apply round trip through an SSH tunnel against
// the same round trip without it: one cluster with one engine, one client
// connected directly and one through `ssh host`, calls alternating
// between the two so that both see the same machine load.
func measureTunnel(o options, exe, host string, ours results) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ipp-bench-tunnel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	profile := filepath.Join(dir, "profile_tunnel")
	cl, err := ipp.NewCluster(ipp.ClusterOptions{
		N: 1, ProfileDir: profile, Logger: quiet,
		ControllerCmd: []string{exe, "controller"}, EngineCmd: []string{exe, "engine"},
		EngineTimeout: 5 * time.Minute,
	})
	if err != nil {
		return err
	}
	direct, err := cl.StartAndConnect(ctx)
	if err != nil {
		cl.Stop(context.Background())
		return err
	}
	defer cl.Stop(context.Background())
	defer direct.Close()
	t0 := time.Now()
	tunnelled, err := ipp.ConnectProfile(ctx, profile, cl.ClusterID(), ipp.WithSSH(host), ipp.WithLogger(quiet))
	if err != nil {
		return err
	}
	defer tunnelled.Close()
	if err := tunnelled.WaitForEngines(ctx, 1, ipp.WaitOptions{Progress: ipp.ProgressOff}); err != nil {
		return err
	}
	connect := time.Since(t0)
	id := direct.IDs()[0]
	call := func(c *ipp.Client) (float64, error) {
		t := time.Now()
		ar, err := c.View(id).Apply(ctx, protocol.Noop)
		if err != nil {
			return 0, err
		}
		if _, err := ar.Get(ctx); err != nil {
			return 0, err
		}
		return time.Since(t).Seconds() * 1e3, nil
	}
	for range 20 {
		for _, c := range []*ipp.Client{direct, tunnelled} {
			if _, err := call(c); err != nil {
				return err
			}
		}
	}
	var dl, tl []float64
	for range o.calls {
		d, err := call(direct)
		if err != nil {
			return err
		}
		t, err := call(tunnelled)
		if err != nil {
			return fmt.Errorf("through the tunnel: %w", err)
		}
		dl, tl = append(dl, d), append(tl, t)
	}
	slices.Sort(dl)
	slices.Sort(tl)
	ours["tunnel_connect_s"] = connect.Seconds()
	ours["tunnel_direct_median_ms"], ours["tunnel_direct_p90_ms"] = percentile(dl, 50), percentile(dl, 90)
	ours["tunnel_apply_median_ms"], ours["tunnel_apply_p90_ms"] = percentile(tl, 50), percentile(tl, 90)
	ours["tunnel_added_median_ms"] = percentile(tl, 50) - percentile(dl, 50)
	fmt.Printf("ipp: apply through an ssh tunnel (%s), %d calls alternating with direct ones: median %.3f ms, p90 %.3f ms; direct median %.3f ms, p90 %.3f ms; added %.3f ms at the median; tunnel up and engines listed in %.2f s\n",
		host, o.calls, percentile(tl, 50), percentile(tl, 90), percentile(dl, 50), percentile(dl, 90), ours["tunnel_added_median_ms"], connect.Seconds())
	return nil
}
