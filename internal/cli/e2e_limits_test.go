package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// startRole runs `ipcluster <role> args...` in its own process group, with
// its output in the test log when the test fails.
func (e *e2e) startRole(args ...string) (*exec.Cmd, *testutil.SyncBuffer) {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = e.env
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.pids = append(e.pids, cmd.Process.Pid)
	e.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if e.t.Failed() {
			e.t.Logf("--- ipcluster %s ---\n%s", strings.Join(args, " "), out.String())
		}
	})
	return cmd, out
}

// vmRSS reads a process's resident size in bytes from /proc.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// hubQuery sends one query to the hub with a plain DEALER, as any client
// would, and decodes the reply's content into out.
func hubQuery(t *testing.T, ci *wire.ClientInfo, s *wire.Session, msgType string, content, out any) {
	t.Helper()
	d, err := transport.Default().NewSocket(transport.Dealer, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Connect(fmt.Sprintf("tcp://127.0.0.1:%d", ci.Registration)); err != nil {
		t.Fatal(err)
	}
	req, _, _ := s.Build(wire.Out{MsgType: msgType, Content: content})
	d.Send(req)
	select {
	case frames := <-d.Messages():
		msg, err := wire.ParseUnchecked(frames)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(msg.Content, out); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no reply to %s within 10 s", msgType)
	}
}

// hubEngines asks the hub for its engines (id -> uuid).
func hubEngines(t *testing.T, ci *wire.ClientInfo, s *wire.Session) map[string]string {
	t.Helper()
	var c struct {
		Engines map[string]string `json:"engines"`
	}
	hubQuery(t, ci, s, "connection_request", map[string]any{}, &c)
	return c.Engines
}

// hubBooked is how many requests the hub has seen go to engine 0, queued
// or completed: the mux relay books a request just before forwarding it.
func hubBooked(t *testing.T, ci *wire.ClientInfo, s *wire.Session) int {
	t.Helper()
	var c map[string]json.RawMessage
	hubQuery(t, ci, s, "queue_request", map[string]any{"targets": nil, "verbose": false}, &c)
	var q struct {
		Queue     int `json:"queue"`
		Completed int `json:"completed"`
	}
	json.Unmarshal(c["0"], &q)
	return q.Queue + q.Completed
}

// TestBigMessagesReleased sends five 200 MB messages to a real controller
// process at once — five keyless single-frame messages to the task port
// and five signed apply_requests through the mux to a Go engine — and
// checks that the controller's resident size falls back within seconds
// instead of holding the freed heap for minutes. The senders stream their
// frames from a small buffer, so the test itself stays small.
func TestBigMessagesReleased(t *testing.T) {
	e := newE2E(t)
	const (
		senders = 5
		size    = 200 << 20
		settled = 500 << 20
	)
	ctl, ctlOut := e.startRole("controller", "--profile-dir", e.profile)
	file := wire.ClientFile(e.profile, "")
	testutil.Eventually(t, 20*time.Second, func() bool { _, err := os.Stat(file); return err == nil }, "no %s", file)
	ci, err := wire.LoadClientInfo(file)
	if err != nil {
		t.Fatal(err)
	}
	e.startRole("engine", "--profile-dir", e.profile)
	session := wire.NewSession([]byte(ci.Key), "")
	var engines map[string]string
	testutil.Eventually(t, 30*time.Second, func() bool {
		engines = hubEngines(t, ci, session)
		return len(engines) == 1
	}, "the engine did not register")
	uuid := engines["0"]

	pid := ctl.Process.Pid
	base, err := vmRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	var (
		peakMu sync.Mutex
		peak   int64
	)
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if n, err := vmRSS(pid); err == nil {
				peakMu.Lock()
				peak = max(peak, n)
				peakMu.Unlock()
			}
			select {
			case <-stopWatch:
				return
			case <-tick.C:
			}
		}
	}()
	// settle waits until the controller is back under the bound and
	// reports how long that took.
	// settle waits until the controller is back under the bound and
	// reports how long that took.
	settle := func(what string) {
		t.Helper()
		start := time.Now()
		last, err := vmRSS(pid)
		for ; err == nil && last >= settled; last, err = vmRSS(pid) {
			if time.Since(start) > 20*time.Second {
				peakMu.Lock()
				defer peakMu.Unlock()
				t.Fatalf("%s: the controller still holds %d MB after 20 s (peak %d MB)", what, last>>20, peak>>20)
			}
			time.Sleep(50 * time.Millisecond) // polling /proc, not synchronising
		}
		if err != nil {
			t.Fatal(err)
		}
		peakMu.Lock()
		t.Logf("%s: controller RSS before %d MB, peak %d MB, %d MB after %v", what, base>>20, peak>>20, last>>20, time.Since(start).Round(10*time.Millisecond))
		peak = 0
		peakMu.Unlock()
	}

	// Keyless: one 200 MB frame each to the task port, which refuses it
	// as unsigned.
	var wg sync.WaitGroup
	for range senders {
		p := testutil.DialZMTP(t, fmt.Sprintf("127.0.0.1:%d", ci.Task), "DEALER", "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.SendStreamed(nil, size); err != nil {
				t.Errorf("keyless send: %v", err)
			}
		}()
	}
	wg.Wait()
	testutil.Eventually(t, 60*time.Second, func() bool {
		return strings.Count(ctlOut.String(), "refused message") >= senders
	}, "the controller did not refuse the %d keyless messages", senders)
	settle("keyless 5 x 200 MB to the task port")

	// Keyed: signed apply_requests through the mux to the engine, each
	// with one 200 MB buffer (not a valid argument: the engine answers
	// with an error, which is all this needs).
	type sent struct {
		p     *testutil.ZMTPPeer
		msgID string
	}
	var all []sent
	sendStart := time.Now()
	for range senders {
		p := testutil.DialZMTP(t, fmt.Sprintf("127.0.0.1:%d", ci.Mux), "DEALER", "")
		frames, h, err := session.Build(wire.Out{
			Idents:  [][]byte{[]byte(uuid)},
			MsgType: "apply_request",
			Content: protocol.ApplyContent{Go: &protocol.Call{Func: protocol.Noop, ArgFrames: []int{1}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sent{p, h.MsgID})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.SendStreamed(frames, size); err != nil {
				t.Errorf("keyed send: %v", err)
			}
		}()
	}
	wg.Wait()
	t.Logf("signed: sent in %v", time.Since(sendStart).Round(time.Millisecond))
	testutil.Eventually(t, 60*time.Second, func() bool { return hubBooked(t, ci, session) >= senders },
		"the controller did not forward the %d requests", senders)
	t.Logf("signed: forwarded after %v", time.Since(sendStart).Round(time.Millisecond))
	settle("signed 5 x 200 MB apply_request through the mux")
	// Every request went through: each sender gets its reply.
	for _, s := range all {
		testutil.Eventually(t, 60*time.Second, func() bool {
			for _, m := range s.p.Messages() {
				if msg, err := wire.ParseUnchecked(m); err == nil && msg.Parent.MsgID == s.msgID {
					return true
				}
			}
			return false
		}, "no reply to %s", s.msgID)
	}
	t.Logf("signed: replies after %v", time.Since(sendStart).Round(time.Millisecond))
	// And the controller stays small once the engine has answered.
	if n, err := vmRSS(pid); err != nil || n >= settled {
		t.Fatalf("the controller holds %d MB after the replies (%v)", n>>20, err)
	}
	close(stopWatch)
	<-watched
}

// TestStartMaxMessageSize: `ipcluster start --max-message-size` reaches
// the controller it launches, which tells the client, which refuses a
// larger push before sending it and keeps working.
func TestStartMaxMessageSize(t *testing.T) {
	e := newE2E(t)
	e.must(0, "start", "-n", "1", "--daemonize", "--max-message-size", "1MiB", "--max-queued-tasks", "100")
	t.Cleanup(func() { e.run("stop") })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := ipp.ConnectProfile(ctx, e.profile, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.View(0).Push(ctx, map[string]any{"x": make([]byte, 2<<20)})
	if !errors.Is(err, ipp.ErrMessageTooLarge) || !strings.Contains(err.Error(), "1048576") {
		t.Fatalf("push of 2 MiB with --max-message-size 1MiB: %v", err)
	}
	ar, err := c.View(0).Push(ctx, map[string]any{"x": make([]byte, 1000)})
	if err == nil {
		err = ar.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("a small push after the refusal: %v", err)
	}
	e.must(0, "stop")
}
