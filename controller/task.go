package controller

import (
	"fmt"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/controller/sched"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

func parseScheme(s string) (sched.Scheme, error) {
	sc, err := sched.ParseScheme(s)
	if err != nil {
		return "", fmt.Errorf("controller: %w", err)
	}
	return sc, nil
}

// taskScheduler connects controller/sched to the task sockets. The
// scheduler itself is pure logic behind mu; the two socket loops and the
// timer loop feed it and carry out the actions it returns.
type taskScheduler struct {
	c       *Controller
	records *records

	mu sync.Mutex
	s  *sched.Scheduler
	// heldTasks and heldBytes count the tasks the scheduler holds and the
	// bytes of their requests, against Config.MaxQueuedTasks and
	// MaxQueuedBytes; mu guards them.
	heldTasks int
	heldBytes int64

	kick chan struct{}
	quit chan struct{}
	once sync.Once
}

// pendingTask is the Payload the scheduler hands back: what is needed to
// send the request to an engine or to answer the client.
type pendingTask struct {
	client  []byte
	body    [][]byte // from the delimiter on
	header  []byte
	msgType string
	attempt int
	size    int64 // bytes of the request, counted in heldBytes while held
	held    bool
}

// QueueFull is the ename of a task refused because the controller already
// holds as many tasks, or task bytes, as it is configured to.
const QueueFull = "QueueFull"

// hold counts p against the queue limits, or says why it cannot be
// queued. mu is held.
func (t *taskScheduler) hold(p *pendingTask) string {
	cfg := &t.c.cfg
	if t.heldTasks >= cfg.MaxQueuedTasks {
		return fmt.Sprintf("the controller already holds %d tasks, its limit (--max-queued-tasks); "+
			"wait for some to finish, or abort tasks nobody waits for", t.heldTasks)
	}
	if t.heldBytes+p.size > cfg.MaxQueuedBytes {
		return fmt.Sprintf("a task of %d bytes would bring the requests the controller holds to %d bytes, "+
			"over its limit of %d (--max-queued-bytes); wait for some tasks to finish", p.size, t.heldBytes+p.size, cfg.MaxQueuedBytes)
	}
	t.heldTasks++
	t.heldBytes += p.size
	p.held = true
	return ""
}

// release uncounts a finished task and drops its request frames: the
// scheduler may keep a pointer to the task for a while (a timeout not yet
// due), which must not pin a large request. mu is held.
func (t *taskScheduler) release(p *pendingTask) {
	if p.held {
		p.held = false
		t.heldTasks--
		t.heldBytes -= p.size
	}
	p.body = nil
}

func newTaskScheduler(c *Controller, rs *records) (*taskScheduler, error) {
	sc, err := parseScheme(c.cfg.Scheme)
	if err != nil {
		return nil, err
	}
	cfg := sched.DefaultConfig()
	cfg.Scheme = sc
	cfg.HWM = c.cfg.HWM
	cfg.Burst = c.cfg.Burst
	return &taskScheduler{
		c:       c,
		records: rs,
		s:       sched.New(cfg),
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
	}, nil
}

func (t *taskScheduler) stop() { t.once.Do(func() { close(t.quit) }) }

// do runs fn on the scheduler and carries out its actions, under mu so the
// order of sends matches the order of decisions.
func (t *taskScheduler) do(fn func(s *sched.Scheduler, now time.Time) []sched.Action) {
	t.mu.Lock()
	acts := fn(t.s, time.Now())
	t.execute(acts)
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

func (t *taskScheduler) engineAdded(uuid string, _ int) {
	t.do(func(s *sched.Scheduler, now time.Time) []sched.Action { return s.AddEngine(uuid, now) })
}

func (t *taskScheduler) engineRemoved(uuid string, _ int, _ string) {
	t.do(func(s *sched.Scheduler, now time.Time) []sched.Action { return s.RemoveEngine(uuid, now) })
}

// loads returns each engine's outstanding task count.
func (t *taskScheduler) loads() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for _, e := range t.s.Stats().Engines {
		out[e.UUID] = e.Load
	}
	return out
}

// unassigned lists tasks not yet sent to an engine.
func (t *taskScheduler) unassigned() []string { return t.records.filter("", "task", false) }

func (t *taskScheduler) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for frames := range t.c.taskIn.Messages() {
			t.submit(frames)
		}
	}()
	go func() {
		defer wg.Done()
		for frames := range t.c.taskOut.Messages() {
			t.result(frames)
		}
	}()
	t.timers()
	wg.Wait()
}

// timers calls Tick when the scheduler's next deadline (a task timeout, a
// stranded task) comes due.
func (t *taskScheduler) timers() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t.mu.Lock()
		next, ok := t.s.NextDeadline()
		t.mu.Unlock()
		wait := time.Hour
		if ok {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-t.quit:
			return
		case <-t.kick:
		case <-timer.C:
			t.do(func(s *sched.Scheduler, now time.Time) []sched.Action { return s.Tick(now) })
		}
	}
}

// taskMetadata is what a LoadBalancedView puts in request metadata.
type taskMetadata struct {
	After   json.RawMessage `json:"after"`
	Follow  json.RawMessage `json:"follow"`
	Timeout *float64        `json:"timeout"`
	Targets []string        `json:"targets"`
	Retries int             `json:"retries"`
	// RetryFailedEngines is our extension (sched.Task.RetryFailedEngines):
	// a retry may run again on an engine the task failed on.
	RetryFailedEngines bool `json:"retry_failed_engines"`
}

func (t *taskScheduler) submit(frames [][]byte) {
	n := t.c.received(frames)
	// Verified, not just parsed: a retry re-signs the request, and the
	// controller must never sign content it did not get from a key holder.
	msg := t.c.verify("task_in", frames)
	if msg == nil {
		return
	}
	if len(msg.Idents) != 1 {
		t.c.rejects.reject("task_in", frames[0], "task request with unexpected routing")
		return
	}
	p := &pendingTask{
		client:  msg.Idents[0],
		body:    frames[1:],
		header:  msg.RawHeader,
		msgType: msg.Header.MsgType,
	}
	task := sched.Task{MsgID: msg.Header.MsgID, Payload: p}
	if t.c.tooBig(n) {
		t.fail(p, "ValueError", tooBigText(msg.Header.MsgType, n, t.c.cfg.MaxMessageSize))
		return
	}
	p.size = n
	t.mu.Lock()
	full := t.hold(p)
	t.mu.Unlock()
	if full != "" {
		// Refused before anything is recorded: nothing of it is kept.
		t.c.log.Warn("task refused", "msg_id", msg.Header.MsgID, "why", full)
		t.fail(p, QueueFull, full)
		return
	}
	if !t.records.add(msg, p.client, "", "task") {
		// A replay or a reused msg_id: the scheduler would refuse it too,
		// but the first request's record must not be touched.
		t.mu.Lock()
		t.release(p)
		t.mu.Unlock()
		t.fail(p, sched.TaskRejectError, "duplicate msg_id "+quote(msg.Header.MsgID)+": a request with this id was already submitted")
		return
	}
	var err error
	var md taskMetadata
	bad := func(err error) {
		t.do(func(s *sched.Scheduler, _ time.Time) []sched.Action {
			return s.Reject(task, sched.InvalidDependency, err.Error())
		})
	}
	if err := msg.DecodeMetadata(&md); err != nil {
		bad(err)
		return
	}
	if task.After, err = sched.ParseDependency(md.After); err != nil {
		bad(err)
		return
	}
	if task.Follow, err = sched.ParseDependency(md.Follow); err != nil {
		bad(err)
		return
	}
	if md.Timeout != nil && *md.Timeout > 0 {
		task.Timeout = time.Duration(*md.Timeout * float64(time.Second))
	}
	task.Targets, task.Retries, task.RetryFailedEngines = md.Targets, md.Retries, md.RetryFailedEngines
	t.do(func(s *sched.Scheduler, now time.Time) []sched.Action { return s.Submit(task, now) })
}

func (t *taskScheduler) result(frames [][]byte) {
	t.c.received(frames)
	if len(frames) >= 2 && string(frames[1]) == wire.Delimiter {
		t.c.probe("task_out", frames, routeTask)
		return
	}
	if len(frames) < 3 {
		return
	}
	uuid := string(frames[0])
	msg := t.c.verify("task_out", frames)
	if msg == nil {
		return
	}
	if len(msg.Idents) != 2 {
		t.c.rejects.reject("task_out", frames[0], "task reply with unexpected routing")
		return
	}
	var md struct {
		Status          string `json:"status"`
		DependenciesMet *bool  `json:"dependencies_met"`
	}
	msg.DecodeMetadata(&md)
	reply := sched.ReplyOK
	switch {
	case md.DependenciesMet != nil && !*md.DependenciesMet:
		reply = sched.ReplyUnmet
	case md.Status != "ok":
		reply = sched.ReplyError
	}
	t.mu.Lock()
	// The scheduler accepts a result only from the engine the task is
	// running on, once; anything else gets no Relay.
	acts := t.s.Result(msg.Parent.MsgID, uuid, reply, time.Now())
	relayed := false
	for _, a := range acts {
		if a.Kind == sched.Relay && a.MsgID == msg.Parent.MsgID {
			// Book first (the client may query as soon as it has the
			// reply), then send [client, engine, DELIM, ...] as
			// ipyparallel's scheduler does.
			if t.records.complete(msg, uuid, frames[1]) {
				frames[0], frames[1] = frames[1], frames[0]
				t.c.taskIn.Send(frames)
				relayed = true
			}
		}
	}
	if !relayed && len(acts) == 0 && t.records.isRestored(msg.Parent.MsgID) && t.records.complete(msg, uuid, frames[1]) {
		// A task the previous controller sent (restore.go): this
		// scheduler never knew it; the record takes the reply, and the
		// client gets it by result_request.
		frames[0], frames[1] = frames[1], frames[0]
		t.c.taskIn.Send(frames)
		relayed = true
	}
	t.execute(acts)
	t.mu.Unlock()
	if !relayed && !retried(acts, msg.Parent.MsgID) {
		t.c.rejects.reject("task_out", frames[0], "task reply that was not expected from this engine")
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// retried reports whether the scheduler took a reply as a reason to send
// the task again (a retry or an unmet dependency), which is expected.
func retried(acts []sched.Action, msgID string) bool {
	for _, a := range acts {
		if a.MsgID == msgID && (a.Kind == sched.Dispatch || a.Kind == sched.Fail) {
			return true
		}
	}
	return false
}

// execute carries out Dispatch and Fail actions; Relays are sent by
// result, which holds the reply frames, and only end the task here. mu is
// held.
func (t *taskScheduler) execute(acts []sched.Action) {
	for _, a := range acts {
		p, _ := a.Task.Payload.(*pendingTask)
		if p == nil {
			continue
		}
		switch a.Kind {
		case sched.Dispatch:
			p.attempt++
			body := p.body
			if a.Repeat {
				body = t.resigned(p)
			}
			out := make([][]byte, 0, 2+len(body))
			out = append(out, []byte(a.Engine), p.client)
			out = append(out, body...)
			t.records.assign(a.MsgID, a.Engine)
			t.c.taskOut.Send(out)
		case sched.Fail:
			t.release(p)
			t.records.fail(a.MsgID, a.ErrName, a.ErrValue)
			t.fail(p, a.ErrName, a.ErrValue)
		case sched.Relay:
			// result sent the reply; the task is over.
			t.release(p)
		}
	}
}

// resigned returns a copy of the request whose metadata notes the attempt,
// so an engine that saw the first copy does not refuse this one as a
// replay (its signature would be identical).
func (t *taskScheduler) resigned(p *pendingTask) [][]byte {
	body := append([][]byte(nil), p.body...)
	var md map[string]any
	if json.Unmarshal(body[4], &md) != nil || md == nil {
		md = map[string]any{}
	}
	md["attempt"] = p.attempt
	body[4], _ = json.Marshal(md)
	sig := t.c.session.Sign(body[2], body[3], body[4], body[5])
	body[1] = sig
	return body
}

// fail answers the client with an apply_reply error, as ipyparallel's
// scheduler does for every kind of request, with no engine routing frame.
func (t *taskScheduler) fail(p *pendingTask, ename, evalue string) {
	out, _, err := t.c.session.Build(wire.Out{
		Idents:  [][]byte{p.client},
		MsgType: protocol.FailureReplyType,
		Parent:  p.header,
		Content: protocol.NewError(ename, evalue),
	})
	if err == nil {
		t.c.taskIn.Send(out)
	}
}
