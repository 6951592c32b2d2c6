package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// The test binary doubles as an engine process (as the cli and launchers
// tests do): with engineChildEnv set it runs engine.Main on its arguments,
// so the chaos soak can SIGKILL real engine processes.
const (
	engineChildEnv = "CONTROLLER_TEST_ENGINE"
	// engineChildLife bounds a child engine, so a failed test leaks
	// nothing for long.
	engineChildLife = 5 * time.Minute
)

func TestMain(m *testing.M) {
	if code, ok := dbChild(); ok {
		os.Exit(code)
	}
	if code, ok := restartChild(); ok {
		os.Exit(code)
	}
	if os.Getenv(engineChildEnv) == "1" {
		time.AfterFunc(engineChildLife, func() { os.Exit(3) })
		os.Exit(engine.Main())
	}
	os.Exit(m.Run())
}

// engineProcs starts and kills engine processes of one controller.
type engineProcs struct {
	file   string
	stderr *testutil.SyncBuffer
	mu     sync.Mutex
	procs  map[int]*exec.Cmd // by pid
}

func (ep *engineProcs) start() error {
	cmd := exec.Command(os.Args[0], "--file", ep.file, "--log-level", "error")
	cmd.Env = append(os.Environ(), engineChildEnv+"=1")
	cmd.Stdout, cmd.Stderr = ep.stderr, ep.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting an engine process: %w", err)
	}
	ep.mu.Lock()
	ep.procs[cmd.Process.Pid] = cmd
	ep.mu.Unlock()
	return nil
}

func (ep *engineProcs) kill(pid int) {
	ep.mu.Lock()
	cmd := ep.procs[pid]
	delete(ep.procs, pid)
	ep.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
}

func (ep *engineProcs) killAll() {
	ep.mu.Lock()
	pids := make([]int, 0, len(ep.procs))
	for pid := range ep.procs {
		pids = append(pids, pid)
	}
	ep.mu.Unlock()
	for _, pid := range pids {
		ep.kill(pid)
	}
}

// registered maps the pid of each registered engine process of ours to
// its hub status.
func (ep *engineProcs) registered(c *controller.Controller) map[int]controller.EngineStatus {
	out := map[int]controller.EngineStatus{}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	for _, e := range c.Engines() {
		var info protocol.EngineInfo
		if json.Unmarshal(e.Info, &info) == nil {
			if _, ours := ep.procs[info.PID]; ours {
				out[info.PID] = e
			}
		}
	}
	return out
}

// TestChaosSoak runs 100,000 load-balanced tasks (retries 0) on four
// engine processes while engines are SIGKILLed and replaced and other
// clients come and go, and counts: every task must return its value or
// an EngineError naming an engine that was killed. Nothing may be lost.
func TestChaosSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos soak takes a minute or two; it runs without -short")
	}
	const (
		tasks      = 100_000
		engines    = 4
		maxKills   = 10
		maxVisits  = 10
		perVisitor = 300
	)
	testutil.RaiseFileLimit(t, 8192)
	c, logs := startController(t, controller.Config{HeartbeatPeriod: 200 * time.Millisecond, HeartbeatMisses: 5})
	file := filepath.Join(t.TempDir(), "engine.json")
	if err := wire.WritePrivateJSON(file, c.EngineInfo()); err != nil {
		t.Fatal(err)
	}
	ep := &engineProcs{file: file, stderr: &testutil.SyncBuffer{}, procs: map[int]*exec.Cmd{}}
	t.Cleanup(ep.killAll)
	for range engines {
		if err := ep.start(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	client, err := ipp.ConnectInfo(ctx, c.ClientInfo(), ipp.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.WaitForEngines(ctx, engines, ipp.WaitOptions{Progress: ipp.ProgressOff}); err != nil {
		t.Fatalf("%v\nengines said:\n%s", err, ep.stderr.String())
	}

	items := make([]int, tasks)
	for i := range items {
		items[i] = i
	}
	began := time.Now()
	ar, err := client.LoadBalanced().WithRetries(0).Map(ctx, protocol.Noop, items)
	if err != nil {
		t.Fatal(err)
	}
	submitted := time.Since(began)
	done := make(chan struct{})

	// The killer: a random registered engine every 1-2 s, replaced at once.
	var killedMu sync.Mutex
	killedUUIDs, killedIDs := map[string]bool{}, map[int]bool{}
	var kills atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		rng := mrand.New(mrand.NewPCG(7, uint64(time.Now().UnixNano())))
		for kills.Load() < maxKills {
			select {
			case <-done:
				return
			case <-time.After(time.Second + time.Duration(rng.IntN(1000))*time.Millisecond): // the chaos's pace
			}
			reg := ep.registered(c)
			if len(reg) == 0 {
				continue
			}
			pids := make([]int, 0, len(reg))
			for pid := range reg {
				pids = append(pids, pid)
			}
			pid := pids[rng.IntN(len(pids))]
			killedMu.Lock()
			killedUUIDs[reg[pid].UUID], killedIDs[reg[pid].ID] = true, true
			killedMu.Unlock()
			ep.kill(pid)
			kills.Add(1)
			if err := ep.start(); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	// Visitors: another client connects, submits a few hundred tasks,
	// reads some results and leaves with the rest outstanding.
	var visits atomic.Int64
	go func() {
		defer wg.Done()
		for range maxVisits {
			select {
			case <-done:
				return
			default:
			}
			vctx, vcancel := context.WithTimeout(ctx, 20*time.Second)
			v, err := ipp.ConnectInfo(vctx, c.ClientInfo(), ipp.WithLogger(discardLogger()))
			if err != nil {
				vcancel()
				t.Errorf("visitor %d cannot connect: %v", visits.Load(), err)
				return
			}
			if err := v.WaitForEngines(vctx, 1, ipp.WaitOptions{Progress: ipp.ProgressOff}); err == nil {
				if vr, err := v.LoadBalanced().WithRetries(0).Map(vctx, protocol.Noop, items[:perVisitor]); err == nil {
					n := 0
					for range vr.Iter(vctx) {
						if n++; n == perVisitor/3 {
							break
						}
					}
				}
			}
			v.Close()
			vcancel()
			visits.Add(1)
		}
	}()

	// Count every task of the main client.
	var results, engineErrors, unnamed, wrong, otherErrs, lost int
	var firstBad []string
	i := 0
	for v, err := range ar.Iter(ctx) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			break
		}
		switch {
		case err == nil:
			if n, ok := v.(int); ok && n == i {
				results++
			} else {
				wrong++
				if len(firstBad) < 5 {
					firstBad = append(firstBad, fmt.Sprintf("task %d returned %#v", i, v))
				}
			}
		case ipp.IsEngineError(err):
			engineErrors++
			var re *ipp.RemoteError
			named := false
			if errors.As(err, &re) {
				killedMu.Lock()
				named = killedUUIDs[re.EngineUUID] || (re.Engine >= 0 && killedIDs[re.Engine])
				for u := range killedUUIDs {
					named = named || strings.Contains(re.EValue, u)
				}
				killedMu.Unlock()
			}
			if !named {
				unnamed++
				if len(firstBad) < 5 {
					firstBad = append(firstBad, fmt.Sprintf("task %d: EngineError naming no killed engine: %v", i, err))
				}
			}
		default:
			otherErrs++
			if len(firstBad) < 5 {
				firstBad = append(firstBad, fmt.Sprintf("task %d: %v", i, err))
			}
		}
		i++
	}
	lost = tasks - i
	elapsed := time.Since(began)
	close(done)
	wg.Wait()
	t.Logf("chaos: tasks=%d kills=%d results=%d EngineErrors=%d lost=%d (wrong=%d other_errors=%d unnamed_engine_errors=%d visitors=%d; submitted in %v, done in %v)",
		tasks, kills.Load(), results, engineErrors, lost, wrong, otherErrs, unnamed, visits.Load(), submitted.Round(time.Millisecond), elapsed.Round(time.Millisecond))
	if lost > 0 || wrong > 0 || otherErrs > 0 || unnamed > 0 {
		t.Errorf("chaos soak: lost %d, wrong %d, other errors %d, EngineErrors naming no killed engine %d; first: %v", lost, wrong, otherErrs, unnamed, firstBad)
	}
	if kills.Load() == 0 {
		t.Errorf("no engine was killed during the soak (it took %v)", elapsed)
	}
	if results+engineErrors != tasks && lost == 0 {
		t.Errorf("counts do not add up: %d results + %d EngineErrors != %d", results, engineErrors, tasks)
	}
	select {
	case <-c.Done():
		t.Errorf("the controller stopped during the soak:\n%s", logs.String())
	default:
	}
}
