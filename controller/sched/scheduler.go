package sched

import (
	"cmp"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Defaults matching ipyparallel 7.1.
const (
	// DefaultHWM is TaskScheduler.hwm: one outstanding task per engine.
	DefaultHWM = 1
	// DefaultBurst is how many tasks an engine that finishes tasks quickly
	// may hold at once (see Config.Burst).
	DefaultBurst = 16
	// DefaultShortTask is the service time under which an engine counts as
	// finishing tasks quickly.
	DefaultShortTask = 2 * time.Millisecond
	// DefaultStrandedDelay is how long Python waits after an engine
	// unregisters before failing the tasks it still had, because their
	// replies may already be on the way.
	DefaultStrandedDelay = 5 * time.Second
)

// Config selects the scheduling policy. Its zero value is valid but means
// an unlimited high-water mark; DefaultConfig gives Python's defaults.
type Config struct {
	// Scheme picks among the engines that can take a task; "" is LeastLoad.
	Scheme Scheme
	// HWM is the most tasks outstanding on one engine; 0 means unlimited,
	// as with --hwm 0. Ignored (always 0) for Pure.
	HWM int
	// Rand drives the random schemes; nil seeds a private generator. Tests
	// pass a seeded one to make choices reproducible.
	Rand *rand.Rand
	// Burst lifts an engine's limit from HWM to Burst while its recent tasks
	// took less than ShortTask each. With HWM 1 every task waits a whole
	// round trip to the engine before the next is sent, so tiny tasks run
	// at the speed of the network, not of the engine; short tasks lose
	// nothing by queueing a few deep, and long ones keep HWM's strict
	// balance because the estimate rises after a single long task. 0 (or a
	// Burst not above HWM, or HWM 0) turns it off, which is ipyparallel's
	// behaviour.
	Burst int
	// ShortTask is the service-time threshold for Burst.
	ShortTask time.Duration
	// StrandedDelay is how long after RemoveEngine the tasks still running
	// there are failed or retried; until then a late reply from the dead
	// engine is still accepted. 0 settles them inside RemoveEngine.
	StrandedDelay time.Duration
}

// DefaultConfig returns leastload, hwm 1 with a burst of 16 for tasks under
// 2 ms, and a 5 s stranded delay.
func DefaultConfig() Config {
	return Config{Scheme: LeastLoad, HWM: DefaultHWM, Burst: DefaultBurst, ShortTask: DefaultShortTask, StrandedDelay: DefaultStrandedDelay}
}

// Task is one load-balanced request as the scheduler needs to see it. The
// controller fills it from the request's metadata (targets, after, follow,
// timeout, retries).
type Task struct {
	// MsgID is the request header's msg_id; it identifies the task in
	// results and in other tasks' dependencies.
	MsgID string
	// Targets restricts the task to these engine uuids; empty means any.
	Targets []string
	// After must be met (anywhere) before the task may start.
	After Dependency
	// Follow must be met on the engine the task runs on.
	Follow Dependency
	// Timeout bounds the time spent waiting in the scheduler, counted anew
	// each time the task is (re)queued; it never interrupts a running task.
	// 0 means wait forever.
	Timeout time.Duration
	// Retries is how many failed replies may be swallowed and the task run
	// again. As in ipyparallel, an engine the task failed on is not used
	// for it again: the retry waits for another engine (until Timeout),
	// see RetryFailedEngines.
	Retries int
	// RetryFailedEngines lets a retry run on an engine the task already
	// failed on once every engine it may use has failed it (request
	// metadata "retry_failed_engines": true, our extension). Without it the
	// task waits for an engine it has not failed on and ends in TaskTimeout
	// (with a Timeout), its own last error (no Timeout, no Targets) or
	// ImpossibleDependency (Targets), as ipyparallel ends it where it ends
	// at all.
	RetryFailedEngines bool
	// Payload is the controller's own data (typically the request frames);
	// the scheduler only hands it back in actions.
	Payload any
}

// ActionKind says what the controller must do with an Action.
type ActionKind int

// The things the scheduler asks the controller to do.
const (
	// Dispatch: send the task to Action.Engine and tell the Hub
	// (task_destination). If Action.Repeat is set, that engine has already
	// received these exact frames; a Python engine drops a signature it has
	// seen (its replay guard), so the controller must re-sign a changed copy.
	Dispatch ActionKind = iota + 1
	// Relay: forward the reply just passed to Result to the client; the
	// task is finished.
	Relay
	// Fail: send the client a synthetic apply_reply error with ErrName and
	// ErrValue (engine_info {}); the task is finished.
	Fail
)

// String returns the kind's name for logs and test failures.
func (k ActionKind) String() string {
	switch k {
	case Dispatch:
		return "Dispatch"
	case Relay:
		return "Relay"
	case Fail:
		return "Fail"
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// Python exception names the scheduler puts in Action.ErrName.
const (
	// ImpossibleDependency: a dependency, target list or location can no
	// longer be satisfied.
	ImpossibleDependency = "ImpossibleDependency"
	// InvalidDependency: a dependency names the task itself, an id the
	// scheduler never saw, or accepts neither success nor failure.
	InvalidDependency = "InvalidDependency"
	// TaskTimeout: the task waited in the scheduler longer than its timeout.
	TaskTimeout = "TaskTimeout"
	// EngineError: the engine running the task died and no retries were
	// left.
	EngineError = "EngineError"
	// TaskRejectError: the request could not be accepted at all (duplicate
	// msg_id, or whatever the controller passes to Reject).
	TaskRejectError = "TaskRejectError"
)

// Action is one instruction to the controller, returned in the order the
// controller should carry them out.
type Action struct {
	// Kind is what to do.
	Kind ActionKind
	// MsgID is the task concerned.
	MsgID string
	// Engine is the destination of a Dispatch, the replying engine of a
	// Relay, and for a Fail the dead engine (EngineError) or "".
	Engine string
	// Task is the scheduler's copy of the task; read it, do not modify it.
	Task *Task
	// Repeat marks a Dispatch to an engine that already got this task.
	Repeat bool
	// ErrName is the Python exception name of a Fail.
	ErrName string
	// ErrValue is the human-readable reason of a Fail.
	ErrValue string
}

// Reply classifies an engine's reply from its metadata.
type Reply int

// The three ways a reply can come back.
const (
	// ReplyOK: metadata.status == "ok".
	ReplyOK Reply = iota
	// ReplyError: any other status.
	ReplyError
	// ReplyUnmet: metadata.dependencies_met == false (the function raised
	// UnmetDependency, e.g. from @ipp.require); checked before status.
	ReplyUnmet
)

// Stats is a snapshot for queue_request and monitoring.
type Stats struct {
	// Queued counts tasks held in the scheduler: waiting for an after
	// dependency or for an engine ("unassigned" in queue_reply).
	Queued int
	// Stranded counts tasks sent to an engine that has since died whose
	// fate is not settled yet (see Config.StrandedDelay).
	Stranded int
	// Engines lists the live engines, least recently used first.
	Engines []EngineLoad
}

// EngineLoad is one engine's outstanding task count.
type EngineLoad struct {
	// UUID is the engine's identity.
	UUID string
	// Load is the number of tasks sent to it and not yet answered.
	Load int
}

type engine struct {
	uuid  string
	load  int // tasks sent and not answered; after death, those still stranded
	alive bool
	// service estimates how long the engine takes per task (an average of
	// recent samples); zero until its first reply.
	service   time.Duration
	lastReply time.Time
}

type jobState uint8

const (
	stateLimbo   jobState = iota // being created, or just taken off an engine
	stateWaiting                 // after dependency not met yet
	stateReady                   // in the ready queue, waiting for an engine
	stateRunning                 // sent to engine
	stateDone                    // relayed or failed
)

type job struct {
	task     Task
	sentAt   time.Time
	seq      uint64 // submission order
	gen      uint64 // bumped on each (re)queue; stale queue entries and timers compare it
	state    jobState
	retries  int
	targets  map[string]bool // nil: any engine
	banned   map[string]bool // engines that reported the dependencies unmet: never again
	avoid    map[string]bool // engines it failed on: never again, or last (RetryFailedEngines)
	sent     []string        // engines it has been dispatched to, if more than one
	sent0    string          // the first of them, kept apart to spare an allocation
	engine   *engine         // while running
	deadline time.Time       // timeout of the current queueing, zero if none
}

// markSent records a dispatch to uuid and reports whether it is a repeat.
func (j *job) markSent(uuid string) bool {
	switch {
	case j.sent0 == "":
		j.sent0 = uuid
	case j.sent0 == uuid || slices.Contains(j.sent, uuid):
		return true
	default:
		j.sent = append(j.sent, uuid)
	}
	return false
}

func (j *job) queued() bool { return j.state == stateWaiting || j.state == stateReady }

// constrained is false for the common task that can run on any engine,
// which lets placement and feasibility checks skip per-engine work.
func (j *job) constrained() bool {
	return j.targets != nil || len(j.banned) > 0 || len(j.avoid) > 0 || len(j.task.Follow.IDs) > 0
}

// Scheduler is the task scheduler's state. It is not safe for concurrent
// use: the controller calls it from one goroutine, passing the current time.
type Scheduler struct {
	scheme        Scheme
	hwm           int
	burst         int
	shortTask     time.Duration
	bursting      bool      // Burst in effect (see updateBursting)
	now           time.Time // of the current call
	rng           *rand.Rand
	strandedDelay time.Duration

	lru     []*engine          // live engines, least recently used first
	engines map[string]*engine // live engines by uuid
	free    int                // live engines below hwm

	jobs   map[string]*job // queued or running tasks
	queued int
	ready  readyQueue
	graph  map[string][]*job // unfinished msg_id -> queued tasks depending on it
	timers timerHeap

	// Outcomes of finished tasks, for dependencies. A msg_id has been seen
	// if it is in jobs or here. This grows with every task ever finished, as
	// in Python; bounding it (and then answering InvalidDependency for ids
	// forgotten) is left for later.
	done map[string]outcome

	// Per-call scratch.
	seq      uint64
	timerSeq uint64
	finished []string // outcomes recorded, dependents not yet examined
	rescan   bool     // something changed that may let ready tasks run
	arming   []*job   // queued with a timeout; timer set if still queued at the end
	out      []Action
	cands    []*engine
	avoided  []*engine
	loads    []int
}

// New returns an empty scheduler. It panics on an unknown Config.Scheme,
// which ParseScheme would have rejected.
func New(cfg Config) *Scheduler {
	sc, err := ParseScheme(string(cfg.Scheme))
	if err != nil {
		panic(err)
	}
	hwm := max(cfg.HWM, 0)
	if sc == Pure {
		hwm = 0
	}
	r := cfg.Rand
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Scheduler{
		scheme:        sc,
		hwm:           hwm,
		burst:         max(cfg.Burst, 0),
		shortTask:     cfg.ShortTask,
		rng:           r,
		strandedDelay: max(cfg.StrandedDelay, 0),
		engines:       make(map[string]*engine),
		jobs:          make(map[string]*job),
		graph:         make(map[string][]*job),
		done:          make(map[string]outcome),
	}
}

// AddEngine makes a registered engine a candidate. Like Python it goes to
// the front of the LRU order, so it is the first choice of lru and of
// leastload ties. Queued tasks that can now run are dispatched. Adding a
// live uuid again does nothing.
func (s *Scheduler) AddEngine(uuid string, now time.Time) []Action {
	s.expire(now)
	if s.engines[uuid] == nil {
		e := &engine{uuid: uuid, alive: true}
		s.lru = slices.Insert(s.lru, 0, e)
		s.engines[uuid] = e
		s.free++
		s.rescan = true
	}
	return s.finish()
}

// RemoveEngine takes a dead engine out of the candidates at once. The tasks
// it was running stay attributed to it for StrandedDelay, so a reply that
// was already on its way is still relayed normally; after that (in Tick, or
// here if the delay is 0) each is retried elsewhere if it has retries left
// and otherwise failed with EngineError. Queued tasks that could only have
// run there fail with ImpossibleDependency now, and tasks that were only
// avoiding the other engines may now run on one of them.
func (s *Scheduler) RemoveEngine(uuid string, now time.Time) []Action {
	s.expire(now)
	e := s.engines[uuid]
	if e == nil {
		return s.finish()
	}
	delete(s.engines, uuid)
	if s.fits(e) {
		s.free--
	}
	s.lru = slices.DeleteFunc(s.lru, func(x *engine) bool { return x == e })
	e.alive = false
	s.rescan = true
	if e.load > 0 {
		s.setTimer(timer{at: now.Add(s.strandedDelay), e: e})
	}
	s.sweep()
	s.expire(now)
	return s.finish()
}

// Submit accepts a new task: it validates the dependencies, then dispatches
// the task if an engine fits, or queues it.
func (s *Scheduler) Submit(t Task, now time.Time) []Action {
	s.expire(now)
	if s.seen(t.MsgID) {
		// Sharing the map entries with an existing task would corrupt both,
		// and only a broken client reuses a msg_id.
		dup := t // a copy, so that t itself stays off the heap
		s.emit(Action{Kind: Fail, MsgID: t.MsgID, Task: &dup,
			ErrName: TaskRejectError, ErrValue: fmt.Sprintf("duplicate msg_id %q", t.MsgID)})
		return s.finish()
	}
	if s.scheme == Pure {
		t.Targets, t.After, t.Follow, t.Retries, t.Timeout = nil, Dependency{}, Dependency{}, 0, 0
	}
	t.After.IDs = dedupe(t.After.IDs)
	t.Follow.IDs = dedupe(t.Follow.IDs)
	s.seq++
	j := &job{task: t, seq: s.seq, retries: max(t.Retries, 0)}
	if len(t.Targets) > 0 {
		j.targets = make(map[string]bool, len(t.Targets))
		for _, u := range t.Targets {
			j.targets[u] = true
		}
	}
	s.jobs[t.MsgID] = j
	if why := s.invalid(j); why != "" {
		s.fail(j, InvalidDependency, why, "")
		return s.finish()
	}
	if why := s.impossible(j); why != "" {
		s.fail(j, ImpossibleDependency, why, "")
		return s.finish()
	}
	s.index(j)
	if met, _ := t.After.status(s.done); met && !s.rescan && s.place(j) {
		// Nothing else changed, so every older ready task already failed to
		// fit and the newcomer may go first without jumping the queue.
		return s.finish()
	}
	s.enqueue(j, now)
	return s.finish()
}

// Result processes an engine's reply to msgID. The returned actions contain
// a Relay for msgID when the reply must go to the client; when they do not,
// the reply was swallowed because the task is being retried or re-routed
// (Python publishes nothing for it either), and the controller drops it. A
// reply for a task the scheduler does not have running on that engine (a
// stale reply after EngineError, a duplicate) is also to be dropped.
func (s *Scheduler) Result(msgID, engineUUID string, r Reply, now time.Time) []Action {
	s.expire(now)
	j := s.jobs[msgID]
	if j == nil || j.state != stateRunning || j.engine.uuid != engineUUID {
		return s.finish()
	}
	e := j.engine
	s.observe(e, j, now)
	s.detach(j)
	switch {
	case r == ReplyUnmet:
		// Retrying there would only get the same answer, and this costs
		// no retry: the task never ran.
		if j.banned == nil {
			j.banned = make(map[string]bool)
		}
		j.banned[e.uuid] = true
		s.requeue(j, now)
	case r != ReplyOK && j.retries > 0:
		j.retries--
		if j.avoid == nil {
			j.avoid = make(map[string]bool)
		}
		j.avoid[e.uuid] = true
		if j.targets == nil && j.task.Timeout == 0 && s.impossible(j) != "" {
			// No engine left to retry on and no timeout to wait for a new
			// one: ipyparallel would hold the task forever. This reply, the
			// task's own error, is the most useful end.
			s.complete(j, e.uuid, false)
			break
		}
		s.requeue(j, now)
	default:
		s.complete(j, e.uuid, r == ReplyOK)
	}
	return s.finish()
}

// Tick fires what is due at now: timeouts of queued tasks and the
// settlement of tasks stranded on dead engines. Every other method does the
// same first, so Tick only needs calling at NextDeadline.
func (s *Scheduler) Tick(now time.Time) []Action {
	s.expire(now)
	return s.finish()
}

// NextDeadline returns when Tick next has something to do, if ever.
func (s *Scheduler) NextDeadline() (time.Time, bool) {
	t, ok := s.timers.peek()
	return t.at, ok
}

// Reject fails a request the controller could not turn into a Task (for
// example its dependency metadata did not parse). The msg_id is remembered
// as failed, so tasks depending on it get ImpossibleDependency rather than
// InvalidDependency, as in Python where the id is recorded before parsing.
func (s *Scheduler) Reject(t Task, errName, errValue string) []Action {
	if !s.seen(t.MsgID) {
		s.record(t.MsgID, outcome{})
	}
	s.emit(Action{Kind: Fail, MsgID: t.MsgID, Task: &t, ErrName: errName, ErrValue: errValue})
	return s.finish()
}

// Stats returns a snapshot of the queue and the engines' loads.
func (s *Scheduler) Stats() Stats {
	st := Stats{Queued: s.queued, Engines: make([]EngineLoad, 0, len(s.lru))}
	for _, j := range s.jobs {
		if j.state == stateRunning && !j.engine.alive {
			st.Stranded++
		}
	}
	for _, e := range s.lru {
		st.Engines = append(st.Engines, EngineLoad{UUID: e.uuid, Load: e.load})
	}
	return st
}

// finish ends every public call: examine dependents of whatever finished,
// hand freed capacity to ready tasks, arm timeouts of tasks still queued,
// and return the actions collected.
func (s *Scheduler) finish() []Action {
	s.propagate()
	s.updateBursting()
	s.drain()
	for _, j := range s.arming {
		if j.queued() {
			s.setTimer(timer{at: j.deadline, j: j, gen: j.gen})
		}
	}
	s.arming = s.arming[:0]
	out := s.out
	s.out = nil
	return out
}

func (s *Scheduler) setTimer(t timer) {
	s.timerSeq++
	t.seq = s.timerSeq
	heap.Push(&s.timers, t)
}

func (s *Scheduler) expire(now time.Time) {
	s.now = now
	for {
		t, ok := s.timers.peek()
		if !ok || t.at.After(now) {
			return
		}
		heap.Pop(&s.timers)
		if t.e != nil {
			s.strand(t.e, now)
			continue
		}
		why := fmt.Sprintf("task still unassigned after its %v timeout", t.j.task.Timeout)
		if s.blacklisting(t.j) {
			why += fmt.Sprintf(" (it failed on %d engine(s) and is not run again where it failed; "+
				"metadata retry_failed_engines allows that)", len(t.j.avoid))
		}
		s.fail(t.j, TaskTimeout, why, "")
	}
}

// strand settles the tasks a dead engine never answered, oldest first, the
// way Python feeds a synthetic EngineError reply through dispatch_result.
func (s *Scheduler) strand(e *engine, now time.Time) {
	lost := make([]*job, 0, e.load)
	for _, j := range s.jobs {
		if j.state == stateRunning && j.engine == e {
			lost = append(lost, j)
		}
	}
	slices.SortFunc(lost, cmpSeq)
	for _, j := range lost {
		s.detach(j)
		if j.retries > 0 {
			j.retries--
			s.requeue(j, now)
			continue
		}
		s.fail(j, EngineError, fmt.Sprintf("Engine %s died while running task '%s'", e.uuid, j.task.MsgID), e.uuid)
	}
}

// sweep re-checks queued tasks after an engine died, since they may have
// been able to run only there.
func (s *Scheduler) sweep() {
	var check []*job
	for _, j := range s.jobs {
		if j.queued() && j.constrained() {
			check = append(check, j)
		}
	}
	slices.SortFunc(check, cmpSeq)
	for _, j := range check {
		if why := s.impossible(j); why != "" {
			s.fail(j, ImpossibleDependency, why, "")
		}
	}
}

func cmpSeq(a, b *job) int { return cmp.Compare(a.seq, b.seq) }

// invalid returns why a dependency is malformed, or "".
func (s *Scheduler) invalid(j *job) string {
	for _, d := range []Dependency{j.task.After, j.task.Follow} {
		if len(d.IDs) == 0 {
			continue
		}
		if !d.Success && !d.Failure {
			return "dependency accepts neither successes nor failures"
		}
		for _, id := range d.IDs {
			if id == j.task.MsgID {
				return "task depends on itself"
			}
			if !s.seen(id) {
				return fmt.Sprintf("dependency on unknown msg_id %q", id)
			}
		}
	}
	return ""
}

// impossible returns why j can never run, or "". It is evaluated on the
// events that can make a task impossible (submission, a dependency
// finishing, an engine dying, an engine reporting unmet dependencies), so
// placement never has to.
func (s *Scheduler) impossible(j *job) string {
	if _, imp := j.task.After.status(s.done); imp {
		return "after dependency can no longer be met"
	}
	f := j.task.Follow
	if _, imp := f.status(s.done); imp {
		return "follow dependency can no longer be met"
	}
	if j.targets == nil && len(j.banned) == 0 && len(f.IDs) == 0 && !s.blacklisting(j) {
		return "" // any engine will do, including one not registered yet
	}
	for _, e := range s.lru {
		if s.allowed(j, e) && f.possibleOn(s.done, e.uuid) {
			return ""
		}
	}
	// Targets are a closed set, and an unmet-dependency report means the
	// task's requirements are not met by the engines we have: failing now
	// beats Python's wait for an engine that may never come.
	if j.targets == nil && len(j.banned) == 0 && f.possibleOnNewEngine(s.done) {
		if s.blacklisting(j) && j.task.Timeout == 0 {
			// Waiting for an engine it has not failed on is what its
			// timeout is for; without one it would wait forever.
			return "the task failed on every live engine, is not run again where it failed " +
				"(metadata retry_failed_engines allows that) and has no timeout to wait for a new engine"
		}
		return ""
	}
	anyAllowed := slices.ContainsFunc(s.lru, func(e *engine) bool { return s.allowed(j, e) })
	switch {
	case !anyAllowed && j.targets != nil && s.blacklisting(j):
		return "the task failed on every live engine among its targets and is not run again where it failed " +
			"(metadata retry_failed_engines allows that)"
	case !anyAllowed && j.targets != nil:
		return "no live engine left among the task's targets"
	case !anyAllowed && len(j.banned) > 0:
		return "every live engine reported the task's dependencies unmet"
	}
	return "follow dependency is tied to an engine that is gone, not allowed, or not unique"
}

// seen reports whether id was ever submitted (or rejected).
func (s *Scheduler) seen(id string) bool {
	if s.jobs[id] != nil {
		return true
	}
	_, ok := s.done[id]
	return ok
}

// allowed reports whether j may ever run on e: among its targets, not
// banned, and not failed there unless RetryFailedEngines.
func (s *Scheduler) allowed(j *job, e *engine) bool {
	return (j.targets == nil || j.targets[e.uuid]) && !j.banned[e.uuid] && (j.task.RetryFailedEngines || !j.avoid[e.uuid])
}

// blacklisting reports whether engines j failed on are excluded for good
// (ipyparallel's blacklist), which only matters once it has failed somewhere.
func (s *Scheduler) blacklisting(j *job) bool {
	return !j.task.RetryFailedEngines && len(j.avoid) > 0
}

func (s *Scheduler) fits(e *engine) bool { return s.hwm == 0 || e.load < s.limit(e) }

// limit is how many tasks e may hold: HWM, or Burst while e is quick and
// the backlog is deep.
func (s *Scheduler) limit(e *engine) int {
	if s.bursting && e.service > 0 && e.service < s.shortTask {
		return s.burst
	}
	return s.hwm
}

// updateBursting turns Burst on while more tasks wait than the engines
// could hold at Burst depth, and off below that. With a short backlog
// (an interactive map of a few dozen items) queueing behind a task that
// turns out to be slow would cost more than the round trips it saves, so
// HWM stays strict; a deep backlog of short tasks is where the round trip
// per task dominates. Limits change for every engine at once, so free is
// recounted.
func (s *Scheduler) updateBursting() {
	want := s.burst > s.hwm && s.hwm > 0 && s.queued > s.burst*len(s.lru)
	if want == s.bursting {
		return
	}
	s.bursting = want
	s.free = 0
	for _, e := range s.lru {
		if s.fits(e) {
			s.free++
		}
	}
	s.rescan = true
}

// observe updates e's service-time estimate when a reply arrives at now.
// An engine runs its tasks one after another, so this one started no
// earlier than it was sent and no earlier than the previous reply: the time
// since the later of the two bounds its service time (network included,
// so the estimate errs on the long side). fits(e) may change, so free is
// kept in step.
func (s *Scheduler) observe(e *engine, j *job, now time.Time) {
	from := j.sentAt
	if e.lastReply.After(from) {
		from = e.lastReply
	}
	var sample time.Duration
	if !from.IsZero() {
		sample = now.Sub(from)
	}
	e.lastReply = now
	if sample <= 0 || !e.alive {
		return
	}
	before := s.fits(e)
	if e.service == 0 {
		e.service = sample
	} else {
		e.service = (7*e.service + sample) / 8
	}
	switch after := s.fits(e); {
	case before && !after:
		s.free--
	case !before && after:
		s.free++
	}
}

// index records j under every unfinished id it depends on, once.
func (s *Scheduler) index(j *job) {
	after, follow := j.task.After.IDs, j.task.Follow.IDs
	for _, id := range after {
		if _, fin := s.done[id]; !fin {
			s.graph[id] = append(s.graph[id], j)
		}
	}
	for _, id := range follow {
		if _, fin := s.done[id]; !fin && !slices.Contains(after, id) {
			s.graph[id] = append(s.graph[id], j)
		}
	}
}

// enqueue puts j in the queue: ready if its after dependency is met,
// otherwise waiting for the graph to release it.
func (s *Scheduler) enqueue(j *job, now time.Time) {
	j.gen++
	s.queued++
	if met, _ := j.task.After.status(s.done); met {
		j.state = stateReady
		s.ready.insert(j)
	} else {
		j.state = stateWaiting
	}
	if j.task.Timeout > 0 {
		j.deadline = now.Add(j.task.Timeout)
		s.arming = append(s.arming, j)
	}
}

// requeue returns a task taken off an engine to the queue, unless the
// engines it may no longer use were the only ones it could run on.
func (s *Scheduler) requeue(j *job, now time.Time) {
	s.enqueue(j, now)
	if why := s.impossible(j); why != "" {
		s.fail(j, ImpossibleDependency, why, "")
		return
	}
	// A reply from a dead engine frees no capacity, yet the task still
	// needs its turn.
	s.rescan = true
}

// leave takes a queued task out of the queue bookkeeping.
func (s *Scheduler) leave(j *job) {
	switch j.state {
	case stateReady:
		s.ready.left()
		s.queued--
	case stateWaiting:
		s.queued--
	}
}

// detach takes a running task off its engine.
func (s *Scheduler) detach(j *job) {
	e := j.engine
	// The limit can move (Burst), so compare before and after rather than
	// assume one task less always makes room.
	before := s.fits(e)
	e.load--
	if e.alive && !before && s.fits(e) {
		s.free++
	}
	if e.alive {
		s.rescan = true
	}
	j.engine = nil
	j.state = stateLimbo
}

func (s *Scheduler) dispatch(j *job, e *engine) {
	s.leave(j)
	j.state = stateRunning
	j.engine = e
	j.sentAt = s.now
	repeat := j.markSent(e.uuid)
	before := s.fits(e)
	e.load++
	if before && !s.fits(e) {
		s.free--
	}
	i := slices.Index(s.lru, e)
	copy(s.lru[i:], s.lru[i+1:])
	s.lru[len(s.lru)-1] = e
	s.emit(Action{Kind: Dispatch, MsgID: j.task.MsgID, Engine: e.uuid, Task: &j.task, Repeat: repeat})
}

// complete relays a real final reply.
func (s *Scheduler) complete(j *job, engineUUID string, ok bool) {
	j.state = stateDone
	delete(s.jobs, j.task.MsgID)
	s.record(j.task.MsgID, outcome{engine: engineUUID, ok: ok})
	s.emit(Action{Kind: Relay, MsgID: j.task.MsgID, Engine: engineUUID, Task: &j.task})
}

// fail ends a task with a scheduler-generated error. engineUUID is where it
// failed (only for EngineError), which is what a follow dependency on it
// would see.
func (s *Scheduler) fail(j *job, name, why, engineUUID string) {
	s.leave(j)
	j.state = stateDone
	delete(s.jobs, j.task.MsgID)
	s.record(j.task.MsgID, outcome{engine: engineUUID})
	s.emit(Action{Kind: Fail, MsgID: j.task.MsgID, Engine: engineUUID, Task: &j.task, ErrName: name, ErrValue: why})
}

// emit queues an action for the caller. Most calls produce one or two.
func (s *Scheduler) emit(a Action) {
	if s.out == nil {
		s.out = make([]Action, 0, 2)
	}
	s.out = append(s.out, a)
}

func (s *Scheduler) record(id string, o outcome) {
	s.done[id] = o
	s.finished = append(s.finished, id)
	s.rescan = true
}

// propagate examines the tasks depending on each newly finished id: they
// may have become impossible (their failure is itself a new outcome, so the
// loop runs until the cascade stops) or, for an after dependency, ready.
func (s *Scheduler) propagate() {
	for i := 0; i < len(s.finished); i++ {
		id := s.finished[i]
		deps, ok := s.graph[id]
		if !ok {
			continue
		}
		delete(s.graph, id)
		for _, j := range deps {
			if !j.queued() {
				continue
			}
			if why := s.impossible(j); why != "" {
				s.fail(j, ImpossibleDependency, why, "")
				continue
			}
			if met, _ := j.task.After.status(s.done); met && j.state == stateWaiting {
				j.state = stateReady
				s.ready.insert(j)
			}
		}
	}
	s.finished = s.finished[:0]
}

// drain offers free engines to the ready tasks in submission order. A task
// that cannot run is skipped, not waited for, so it blocks nobody behind it;
// the scan stops as soon as every engine is full, so a result costs the
// tasks skipped plus one placement, however long the queue behind them.
func (s *Scheduler) drain() {
	if !s.rescan {
		return
	}
	s.rescan = false
	i := 0
	for ; i < len(s.ready.entries) && s.free > 0; i++ {
		if e := s.ready.entries[i]; e.live() {
			s.place(e.j)
		}
	}
	s.ready.squeeze(i)
	s.ready.tidy()
}

// place dispatches j to the scheme's choice among the engines that can
// take it now, and reports whether it did.
func (s *Scheduler) place(j *job) bool {
	s.cands, s.avoided, s.loads = s.cands[:0], s.avoided[:0], s.loads[:0]
	if !j.constrained() {
		for _, e := range s.lru {
			if s.fits(e) {
				s.cands = append(s.cands, e)
			}
		}
	} else {
		f := j.task.Follow
		for _, e := range s.lru {
			if !s.fits(e) || !s.allowed(j, e) || !f.metOn(s.done, e.uuid) {
				continue
			}
			if j.avoid[e.uuid] {
				s.avoided = append(s.avoided, e)
			} else {
				s.cands = append(s.cands, e)
			}
		}
		if len(s.cands) == 0 && len(s.avoided) > 0 && !s.hasUnavoided(j) {
			// Every engine the task could use has failed it, and the task
			// asked to run again there (RetryFailedEngines): a transient
			// error gets its chance, and it still ends, as each failure
			// costs a retry. (Without the flag allowed excludes them.)
			j.avoid = nil
			s.cands = append(s.cands, s.avoided...)
		}
	}
	if len(s.cands) == 0 {
		return false
	}
	for _, e := range s.cands {
		s.loads = append(s.loads, e.load)
	}
	s.dispatch(j, s.cands[s.scheme.pick(s.loads, s.rng)])
	return true
}

// hasUnavoided reports whether some live engine j has not failed on could
// take it once it has room: then the task waits for it.
func (s *Scheduler) hasUnavoided(j *job) bool {
	return slices.ContainsFunc(s.lru, func(e *engine) bool {
		return !j.avoid[e.uuid] && s.allowed(j, e) && j.task.Follow.possibleOn(s.done, e.uuid)
	})
}
