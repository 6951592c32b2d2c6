package ipp

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/interp"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// waitStarted reads ar's output until every engine printed "started",
// which proves each is inside the snippet (so SIGINT has something to
// interrupt, rather than arriving while the request is still in transit).
func waitStarted(t *testing.T, ar *AsyncResult, n int) []Output {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	var seen []Output
	started := map[int]bool{}
	for o := range ar.Outputs(ctx) {
		seen = append(seen, o)
		if strings.Contains(o.Text, "started") {
			started[o.Engine] = true
		}
		if len(started) == n {
			return seen
		}
	}
	t.Fatalf("engines did not start the snippet; outputs so far %+v", seen)
	return nil
}

func TestInterruptBusyLoop(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	ar, err := c.All().Execute(ctx, "import \"fmt\"\nfmt.Println(\"started\")\nfor { }")
	if err != nil {
		t.Fatal(err)
	}
	out := waitStarted(t, ar, 2)
	for _, o := range out {
		if o.Stream != "stdout" || o.Engine < 0 {
			t.Errorf("output %+v: want stdout with an engine id", o)
		}
	}
	if got := ar.RunningEngines(); len(got) != 2 {
		t.Errorf("running engines %v, want both", got)
	}
	if err := ar.Interrupt(ctx); err != nil {
		t.Fatalf("Interrupt: %v", err)
	}
	_, err = ar.Get(ctx)
	var ce *CompositeError
	if !errors.As(err, &ce) || len(ce.Errors) != 2 {
		t.Fatalf("want a CompositeError with 2 errors, got %v", err)
	}
	for _, re := range ce.Errors {
		if re.EName != interp.NameInterrupted {
			t.Errorf("engine %d: %s: %s, want %s", re.Engine, re.EName, re.EValue, interp.NameInterrupted)
		}
	}
	if got := ar.RunningEngines(); len(got) != 0 {
		t.Errorf("running engines after the replies: %v", got)
	}
	// Nothing is running now: interrupting again is a no-op.
	if err := ar.Interrupt(ctx); err != nil {
		t.Errorf("second Interrupt: %v", err)
	}
	// The engines answer the next request at once (not after the 5 s
	// Busy wait that a run stuck in compiled code would cause).
	next, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	ar, err = c.All().Execute(next, "1+1", Silent(false))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := ar.GetList(next)
	if err != nil {
		t.Fatalf("exec after interrupt: %v", err)
	}
	for _, v := range vals {
		if v.(*ExecuteReply).Text() != "2" {
			t.Errorf("exec after interrupt: %+v", v)
		}
	}
}

func TestSendSignalDirectView(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	ids := c.IDs()
	ar, err := c.View(ids[1]).Execute(ctx, "import \"fmt\"\nfmt.Println(\"started\")\nfor { }")
	if err != nil {
		t.Fatal(err)
	}
	waitStarted(t, ar, 1)
	// Signalling the idle engine too is harmless.
	if err := c.All().Signal(ctx, syscall.SIGINT); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	_, err = ar.Get(ctx)
	var re *RemoteError
	if !errors.As(err, &re) || re.EName != interp.NameInterrupted {
		t.Fatalf("want %s, got %v", interp.NameInterrupted, err)
	}
}

func TestSendSignalNamesFailedEngines(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	ids := c.IDs()
	// Signal 0 is refused by every engine: the error must name them all.
	err := c.SendSignal(ctx, syscall.Signal(0))
	var se *SignalError
	if !errors.As(err, &se) {
		t.Fatalf("want *SignalError, got %v", err)
	}
	if got := se.Engines(); len(got) != len(ids) {
		t.Errorf("failed engines %v, want %v", got, ids)
	}
	for _, id := range ids {
		if !strings.Contains(err.Error(), "engine "+strconv.Itoa(id)) {
			t.Errorf("error %q does not name engine %d", err, id)
		}
	}
	// An engine that does not exist is refused before anything is sent.
	if err := c.SendSignal(ctx, syscall.SIGINT, 999); err == nil {
		t.Error("SendSignal to engine 999 succeeded")
	}
}

func TestOutputsStreamsLive(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	dir := t.TempDir()
	gate := dir + "/gate"
	code := "import (\"fmt\"; \"os\"; \"time\")\nfmt.Println(\"before\")\nfmt.Fprintln(os.Stderr, \"warn\")\n" +
		"var err error\nfor {\n_, err = os.Stat(" + strconv.Quote(gate) + ")\nif err == nil {\nbreak\n}\ntime.Sleep(10 * time.Millisecond)\n}\nfmt.Println(\"after\")"
	ar, err := c.All().Execute(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	// Both engines' "before" must arrive while they still wait for the
	// gate: that is the live part of the stream.
	var early []Output
	befores := 0
	for o := range ar.Outputs(ctx) {
		early = append(early, o)
		if strings.Contains(o.Text, "before") {
			befores++
		}
		if befores == 2 {
			break
		}
	}
	if befores != 2 || ar.Ready() {
		_, err := ar.Get(ctx)
		t.Fatalf("before the gate: outputs %+v, ready %v (%v)", early, ar.Ready(), err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A second iterator replays everything, then ends with the result.
	var all []Output
	for o := range ar.Outputs(ctx) {
		all = append(all, o)
	}
	if !ar.Ready() {
		t.Fatal("Outputs ended before the result was ready")
	}
	count := map[string]int{}
	for _, o := range all {
		count[o.Stream+":"+strings.TrimSpace(o.Text)]++
	}
	for _, k := range []string{"stdout:before", "stdout:after", "stderr:warn"} {
		if count[k] != 2 {
			t.Errorf("%s seen %d times in %+v", k, count[k], all)
		}
	}
	// Per engine, "before" comes before "after".
	for _, id := range c.IDs() {
		var seq []string
		for _, o := range all {
			if o.Engine == id && o.Stream == "stdout" {
				seq = append(seq, strings.TrimSpace(o.Text))
			}
		}
		if strings.Join(seq, ",") != "before,after" {
			t.Errorf("engine %d stdout order %v", id, seq)
		}
	}
	testutil.Eventually(t, 5*time.Second, ar.Ready, "result ready")
}
