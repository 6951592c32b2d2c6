package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// A controller that dies (kill -9, its node lost) leaves its connection
// files behind, and its engines and clients keep reconnecting to the same
// ports: ZeroMQ does that by itself. A controller started with
// Config.Restore binds those very ports with the same key, so everyone
// simply finds it again. What the dead controller knew in memory comes
// back from two places: the engine table (EngineStateFile, rewritten at
// every registration and departure) gives each engine its id back, and
// the task database (the db helper's store) the tasks; those that were in
// flight are completed by the replies Go engines held while the
// controller was away, or failed with TaskLost, never left pending.

// DefaultRestoreGrace is the default Config.RestoreGrace: longer than the
// engines' default --controller-timeout (30 s) plus a registration, so an
// engine still waiting for its controller is not given up on first.
const DefaultRestoreGrace = 60 * time.Second

// EngineStateFile is where a controller keeps its engine table for a
// restore: security/ipcontroller[-<cluster id>]-engines.json, mode 0600.
// ipyparallel keeps the same table as log/engines<cluster id>.json; ours
// sits with the other files that only the cluster's owner may read, since
// it names the engines' identities.
func EngineStateFile(profileDir, clusterID string) string {
	f := wire.EngineFile(profileDir, clusterID)
	return strings.TrimSuffix(f, "-engine.json") + "-engines.json"
}

// stateFile is EngineStateFile's content: ipyparallel's {"engines": {id:
// uuid}, "next_id": n}, plus the hash of the key the engines sign with (a
// table written for another key belongs to another cluster and is
// ignored) and which engines are Go engines (they register again with
// ready probes; the others are waited for by heartbeat).
//
// It also keeps both connection files' content: ipcluster removes the
// connection files of a controller it finds dead (list, exec), and a
// restore must still find the ports and key afterwards. The file is as
// private as they are (0600 in the security directory).
type stateFile struct {
	Engines   map[string]string `json:"engines"`
	NextID    int               `json:"next_id"`
	KeySHA256 string            `json:"key_sha256"`
	Go        []string          `json:"go_engines,omitempty"`
	Engine    *wire.EngineInfo  `json:"engine_connection,omitempty"`
	Client    *wire.ClientInfo  `json:"client_connection,omitempty"`
	// CurveSecretKey is the controller's CURVE secret key, which its
	// peers trust and which exists nowhere else when the controller made
	// it: without it a CURVE cluster could not be restored. It is no more
	// secret than the HMAC key beside it.
	CurveSecretKey string `json:"curve_secretkey,omitempty"`
}

func keyHash(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:])
}

// previous is what Config.Restore read from the dead controller's files.
type previous struct {
	engine *wire.EngineInfo
	client *wire.ClientInfo
}

// interfaceIP is the address part of a connection file's interface.
func interfaceIP(iface string) (string, error) {
	i := strings.Index(iface, "://")
	if i < 0 || !strings.HasPrefix(iface, "tcp") {
		return "", fmt.Errorf("interface %q is not tcp://<address>", iface)
	}
	return iface[i+3:], nil
}

// errNothingToRestore says no connection files or engine table of an
// earlier controller exist. With a sqlite task database left behind, a
// restore still brings back the task records, on new ports.
var errNothingToRestore = errors.New("controller: nothing to restore")

// loadPrevious reads the connection files of the controller to restore
// and fills cfg's address, location and key from them.
func loadPrevious(cfg *Config) (*previous, error) {
	if cfg.ProfileDir == "" {
		return nil, fmt.Errorf("%w: restore needs the profile directory of the cluster to restore", errNothingToRestore)
	}
	ef, cf := wire.EngineFile(cfg.ProfileDir, cfg.ClusterID), wire.ClientFile(cfg.ProfileDir, cfg.ClusterID)
	ei, ci, err := previousFiles(ef, cf, EngineStateFile(cfg.ProfileDir, cfg.ClusterID))
	if err != nil {
		return nil, err
	}
	if ei.Key != ci.Key {
		return nil, fmt.Errorf("controller: cannot restore: %s and %s have different keys (files of two clusters?)", ef, cf)
	}
	if len(ei.Broadcast) != broadcastLeaves {
		return nil, fmt.Errorf("controller: cannot restore from %s: %d broadcast ports, this controller has %d", ef, len(ei.Broadcast), broadcastLeaves)
	}
	if len(cfg.Key) > 0 && string(cfg.Key) != ei.Key {
		return nil, fmt.Errorf("controller: cannot restore: the session key given is not the key of %s (engines and clients of the cluster sign with that one)", ef)
	}
	cfg.Key = []byte(ei.Key)
	if cfg.IP, err = interfaceIP(ei.Interface); err != nil {
		return nil, fmt.Errorf("controller: cannot restore from %s: %w", ef, err)
	}
	if cfg.ClientIP, err = interfaceIP(ci.Interface); err != nil {
		return nil, fmt.Errorf("controller: cannot restore from %s: %w", cf, err)
	}
	if ci.Location != "" {
		cfg.Location = ci.Location
	}
	if cfg.Scheme == "" {
		cfg.Scheme = ci.TaskScheme
	}
	if (ei.CurveServerKey != nil && *ei.CurveServerKey != "") || (ci.CurveServerKey != nil && *ci.CurveServerKey != "") {
		if cfg.CurveSecretKey == "" {
			cfg.CurveSecretKey = tableCurveSecret(EngineStateFile(cfg.ProfileDir, cfg.ClusterID), cfg.Key)
		}
		if cfg.CurveSecretKey == "" {
			return nil, fmt.Errorf("controller: cannot restore: the cluster uses CURVE and its engines and clients trust only the previous controller's key; give its secret key ($%s)", protocol.EnvCurveSecretKey)
		}
	}
	return &previous{engine: ei, client: ci}, nil
}

// previousFiles reads the dead controller's connection files or, when
// they are gone, the copy in its engine table.
func previousFiles(ef, cf, sf string) (*wire.EngineInfo, *wire.ClientInfo, error) {
	_, errE := os.Stat(ef)
	_, errC := os.Stat(cf)
	if errE == nil && errC == nil {
		ei, err := wire.LoadEngineInfo(ef)
		if err != nil {
			return nil, nil, fmt.Errorf("controller: cannot restore from %s: %w", ef, err)
		}
		ci, err := wire.LoadClientInfo(cf)
		if err != nil {
			return nil, nil, fmt.Errorf("controller: cannot restore from %s: %w", cf, err)
		}
		return ei, ci, nil
	}
	nothing := fmt.Errorf("%w: neither the connection files (%s) nor the engine table (%s) of a controller are there (a controller that stopped normally removes them; start a new cluster instead)", errNothingToRestore, ef, sf)
	_ = fmt.Errorf("controller: nothing to restore: neither the connection files (%s) nor the engine table (%s) of a controller are there (a controller that stopped normally removes them; start a new cluster instead)", ef, sf)
	data, err := os.ReadFile(sf)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nothing
	}
	if err != nil {
		return nil, nil, fmt.Errorf("controller: cannot restore: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("controller: cannot restore from %s: %w", sf, err)
	}
	if f.Engine == nil || f.Client == nil {
		return nil, nil, nothing
	}
	if keyHash([]byte(f.Engine.Key)) != f.KeySHA256 {
		return nil, nil, fmt.Errorf("controller: cannot restore from %s: its key does not match its own hash (a damaged file)", sf)
	}
	return f.Engine, f.Client, nil
}

// tableCurveSecret is the CURVE secret key the engine table at sf keeps
// for a cluster signing with key, or "".
func tableCurveSecret(sf string, key []byte) string {
	data, err := os.ReadFile(sf)
	if err != nil {
		return ""
	}
	var f stateFile
	if json.Unmarshal(data, &f) != nil || f.KeySHA256 != keyHash(key) {
		return ""
	}
	return f.CurveSecretKey
}

// checkCurve refuses a restore whose CURVE settings differ from the files:
// peers would not be able to talk to the new sockets.
func (p *previous) checkCurve(engineCurve, clientCurve bool) error {
	for _, s := range []struct {
		name string
		c    *wire.Common
		on   bool
	}{{"engine", &p.engine.Common, engineCurve}, {"client", &p.client.Common, clientCurve}} {
		had := s.c.CurveServerKey != nil && *s.c.CurveServerKey != ""
		if had != s.on {
			return fmt.Errorf("controller: cannot restore: the %s side used CURVE %s, the settings given say %s (use the previous --curve setting)", s.name, onOff(had), onOff(s.on))
		}
	}
	return nil
}

// secretMatches checks that CURVE peers keep trusting the restored
// controller's key.
func (p *previous) secretMatches(secret string) error {
	pub, err := transport.CurvePublicKey(secret)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	for _, c := range []*wire.Common{&p.engine.Common, &p.client.Common} {
		if c.CurveServerKey != nil && *c.CurveServerKey != "" && *c.CurveServerKey != pub {
			return errors.New("controller: cannot restore: the CURVE secret key given is not the previous controller's (its public key differs from curve_serverkey in the connection files)")
		}
	}
	return nil
}

// ports maps each port field Start binds to the port the previous
// controller had.
func (p *previous) ports(ci *wire.ClientInfo, ei *wire.EngineInfo, leaves []int, split bool) (map[*int]int, error) {
	pe, pc := p.engine, p.client
	m := map[*int]int{
		&ei.Registration: pe.Registration, &ei.Mux: pe.Mux, &ei.Control: pe.Control, &ei.Task: pe.Task,
		&ei.IOPub: pe.IOPub, &ei.HBPing: pe.HBPing, &ei.HBPong: pe.HBPong,
		&ci.Notification: pc.Notification, &ci.Mux: pc.Mux, &ci.Control: pc.Control, &ci.Task: pc.Task,
		&ci.Broadcast: pc.Broadcast, &ci.IOPub: pc.IOPub,
	}
	for i := range leaves {
		m[&leaves[i]] = pe.Broadcast[i]
	}
	if split {
		m[&ci.Registration] = pc.Registration
	} else if pc.Registration != pe.Registration {
		return nil, errors.New("controller: cannot restore: the files have two registration ports but one interface")
	}
	for _, port := range m {
		if port <= 0 || port > 65535 {
			return nil, fmt.Errorf("controller: cannot restore: port %d in the connection files", port)
		}
	}
	return m, nil
}

// engineTable writes the engine table; nil-safe for a controller without
// a profile.
type engineTable struct {
	path string
	hash string
	// kick asks the writer for a new version; writes are coalesced and
	// off the hub's paths (a profile on NFS makes each one slow).
	kick   chan struct{}
	mu     sync.Mutex // serialises writes
	closed bool       // removed: no more writes
}

// startRestore runs in Start once the hub exists: it sets up the engine
// table's file and, when restoring, loads the previous table and the
// tasks that were in flight.
func (c *Controller) startRestore() error {
	if c.prev != nil && c.cfg.CurveSecretKey != "" {
		if err := c.prev.secretMatches(c.cfg.CurveSecretKey); err != nil {
			return err
		}
	}
	c.inflight = newInflight()
	if c.prev == nil && len(c.inFlightAtRestore) > 0 {
		// Records restored onto a new cluster: fail what was in flight.
		c.restoreTasks(c.inFlightAtRestore)
	}
	if c.cfg.ProfileDir == "" {
		return nil
	}
	c.state = &engineTable{path: EngineStateFile(c.cfg.ProfileDir, c.cfg.ClusterID), hash: keyHash(c.cfg.Key), kick: make(chan struct{}, 1)}
	go c.hub.writeEngines()
	if c.prev == nil {
		// A new cluster: whatever table is there belongs to a dead one;
		// Start writes this controller's over it.
		return nil
	}
	table, err := c.state.load()
	switch {
	case err != nil:
		c.log.Warn("restoring without the engine table: engines will get new ids", "file", c.state.path, "err", err)
	case table != nil:
		c.hub.restoreEngines(table)
	}
	c.restoreTasks(c.incompleteTasks())
	return nil
}

func (s *engineTable) remove() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	os.Remove(s.path)
}

// load reads the table; nil without a file. A table signed for another
// key is an error: it is another cluster's, and its uuids must not be
// taken for this cluster's engines.
func (s *engineTable) load() (*stateFile, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("unreadable engine table: %w", err)
	}
	if f.KeySHA256 != s.hash {
		return nil, errors.New("the engine table was written for another key (another cluster's); ignoring it")
	}
	return &f, nil
}

func (s *engineTable) save(f *stateFile) error {
	if s == nil {
		return nil
	}
	f.KeySHA256 = s.hash
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	return wire.WritePrivateJSON(s.path, f)
}

// saveEngines asks for the engine table to be written again; called after
// every registration and departure.
func (h *hub) saveEngines() {
	if h.c.state == nil {
		return
	}
	select {
	case h.c.state.kick <- struct{}{}:
	default:
	}
}

// writeEngines writes the table whenever asked, until the hub stops.
// Consecutive writes are spaced by at least 20 times the last one's
// duration (20 ms or more), so that the writer stays under 5 % of a core:
// the table is rewritten whole, and 1,000 engines registering at once
// otherwise meant 1,000 back-to-back rewrites of a growing file. A lone
// change after a quiet spell is still written at once.
func (h *hub) writeEngines() {
	var last time.Time
	gap := time.Duration(0)
	for {
		select {
		case <-h.quit:
			return
		case <-h.c.state.kick:
		}
		if wait := gap - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-h.quit:
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		h.writeEnginesNow()
		gap = max(minEngineTableGap, 20*time.Since(last))
	}
}

// minEngineTableGap is the least time between two writes of the engine
// table (see writeEngines).
const minEngineTableGap = 20 * time.Millisecond

// writeEnginesNow writes the current table.
func (h *hub) writeEnginesNow() {
	if h.c.state == nil {
		return
	}
	h.mu.Lock()
	f := &stateFile{Engines: make(map[string]string, len(h.engines)), NextID: h.nextID,
		Engine: h.c.EngineInfo(), Client: h.c.ClientInfo()}
	if h.c.engineSide.curve || h.c.clientSide.curve {
		f.CurveSecretKey = h.c.cfg.CurveSecretKey
	}
	for id, e := range h.engines {
		f.Engines[strconv.Itoa(id)] = e.uuid
		if e.probes {
			f.Go = append(f.Go, e.uuid)
		}
	}
	h.mu.Unlock()
	if err := h.c.state.save(f); err != nil {
		h.c.log.Warn("cannot write the engine table; a restore would give engines new ids", "file", h.c.state.path, "err", err)
	}
}

// restoreEngines re-creates the previous controller's engines as pending
// registrations that hold their ids: a Go engine confirms by registering
// again (same uuid, same id), a Python engine by answering a heartbeat.
// One that does neither within RestoreGrace is dropped, and its tasks in
// flight fail.
func (h *hub) restoreEngines(f *stateFile) {
	goEngines := map[string]bool{}
	for _, u := range f.Go {
		goEngines[u] = true
	}
	now := time.Now()
	h.mu.Lock()
	for k, uuid := range f.Engines {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 || uuid == "" {
			continue
		}
		if _, dup := h.byUUID[uuid]; dup {
			continue
		}
		if _, dup := h.engines[id]; dup {
			continue
		}
		e := &engine{id: id, uuid: uuid, probes: goEngines[uuid], pendedAt: now, queue: map[string]struct{}{}, restored: true}
		h.engines[id] = e
		h.byUUID[uuid] = e
		if id >= h.nextID {
			h.nextID = id + 1
		}
	}
	if f.NextID > h.nextID {
		h.nextID = f.NextID
	}
	// Restored engines are pending: serveHeartbeat's fast ticker must run
	// (wakeFast never blocks, so holding mu here is fine).
	h.wakeFast()
	n := len(h.engines)
	h.mu.Unlock()
	h.c.log.Info("restored the engine table; waiting for the engines to come back", "engines", n, "grace", h.c.cfg.RestoreGrace)
}

// pendingLimit is how long a registration may stay pending: a restored
// engine gets RestoreGrace to come back.
func (h *hub) pendingLimit(e *engine) time.Duration {
	if e.restored {
		return max(h.c.cfg.RegistrationTimeout, h.c.cfg.RestoreGrace)
	}
	return h.c.cfg.RegistrationTimeout
}

// reregister answers a registration_request from an engine the hub
// already has under that uuid: a Go engine that lost its controller and
// found it again (restarted, or back from a stall). It keeps its id; a
// registered engine is confirmed at once, a restored one completes with
// its ready probes. held lists the requests the engine still has (queued,
// running, or replies it is about to send again): any other task the
// previous controller had in flight on it is lost, and fails now.
func (h *hub) reregister(e *engine, held []string) (id int, registered bool) {
	// Called with h.mu held.
	e.probes = true
	e.routes = 0
	e.pendedAt = time.Now()
	if e.restored {
		h.c.inflight.settle(h, e.uuid, e.id, held)
	}
	return e.id, e.state == stateRegistered
}

// inflightTask is a task the previous controller had sent to an engine
// when it died.
type inflightTask struct {
	msgID, engine string
}

// inflight tracks the tasks restored from the database without a result,
// until their engine delivers the reply, says it has no such task, or
// does not come back.
type inflight struct {
	mu       sync.Mutex
	byEngine map[string]map[string]struct{}
}

func newInflight() *inflight { return &inflight{byEngine: map[string]map[string]struct{}{}} }

func (f *inflight) add(t inflightTask) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.byEngine[t.engine]
	if m == nil {
		m = map[string]struct{}{}
		f.byEngine[t.engine] = m
	}
	m[t.msgID] = struct{}{}
}

// take removes and returns the tasks in flight on engine, all of them or
// those not in keep.
func (f *inflight) take(engine string, keep map[string]bool) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.byEngine[engine] {
		if !keep[id] {
			out = append(out, id)
			delete(f.byEngine[engine], id)
		}
	}
	if len(f.byEngine[engine]) == 0 {
		delete(f.byEngine, engine)
	}
	return out
}

// settle fails the tasks of engine id that it does not hold any more.
// Called with h.mu held: records has its own lock.
func (f *inflight) settle(h *hub, uuid string, id int, held []string) {
	keep := make(map[string]bool, len(held))
	for _, m := range held {
		keep[m] = true
	}
	for _, m := range f.take(uuid, keep) {
		h.records.fail(m, "TaskLost", fmt.Sprintf("engine %d came back after the controller restarted without task '%s': its reply was lost with the previous controller", id, m))
	}
}

// gone fails every task in flight on an engine that did not come back.
func (f *inflight) gone(h *hub, uuid string, id int) {
	name := strconv.Itoa(id)
	if id < 0 {
		name = uuid // not in the engine table
	}
	for _, m := range f.take(uuid, nil) {
		h.records.fail(m, "TaskLost", fmt.Sprintf("engine %s did not come back after the controller restarted; task '%s' was running on it", name, m))
	}
}

// engines lists the engines with tasks in flight.
func (f *inflight) engines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.byEngine))
	for u := range f.byEngine {
		out = append(out, u)
	}
	return out
}

// sweepInflight runs RestoreGrace after a restore: tasks in flight on an
// engine the hub does not know (the engine table was lost, or did not
// name it) fail now; those of engines still pending fail when their
// registration times out, and those of engines that came back wait for
// their replies.
func (h *hub) sweepInflight() {
	for _, u := range h.c.inflight.engines() {
		h.mu.Lock()
		_, known := h.byUUID[u]
		h.mu.Unlock()
		if !known {
			h.c.inflight.gone(h, u, -1)
		}
	}
}

// incompleteTasks is what the task database loaded that has no result.
// The database (db helper) fills it; without one there is nothing.
func (c *Controller) incompleteTasks() []*TaskRecord {
	if c.cfg.restoredTasks != nil {
		return c.cfg.restoredTasks()
	}
	return c.inFlightAtRestore
}

// restoreTasks takes the tasks that had no result when the previous
// controller died. Those that never reached an engine fail at once (the
// previous scheduler's queue is gone; the client resubmits them); those on
// an engine wait for it.
func (c *Controller) restoreTasks(recs []*TaskRecord) {
	lost := 0
	for _, r := range recs {
		if r == nil || r.MsgID == "" || !r.Completed.IsZero() {
			continue
		}
		c.records.addRestored(r)
		if c.prev == nil {
			// Only the task database was left (the previous controller
			// stopped normally, or its files are gone): this cluster has
			// new ports and a new key, so no engine can bring a result.
			c.records.fail(r.MsgID, "TaskLost", fmt.Sprintf("the controller restarted while task '%s' was in flight, on a new cluster its engines cannot reach; its result is lost (resubmit it)", r.MsgID))
			lost++
			continue
		}
		if r.EngineUUID == "" {
			c.records.fail(r.MsgID, "TaskLost", fmt.Sprintf("task '%s' was waiting in the controller's queue when the controller stopped; it did not run (resubmit it)", r.MsgID))
			lost++
			continue
		}
		c.inflight.add(inflightTask{msgID: r.MsgID, engine: r.EngineUUID})
	}
	c.sweep = time.AfterFunc(c.cfg.RestoreGrace, c.hub.sweepInflight)
	if len(recs) > 0 {
		c.log.Info("restored the tasks in flight", "tasks", len(recs), "failed_unassigned", lost)
	}
}

// addRestored puts back a request the previous controller recorded and
// did not complete. The client's routing identity died with the previous
// controller's sockets, so the reply is accepted from its engine for
// whichever connection the engine names.
func (rs *records) addRestored(tr *TaskRecord) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r, ok := rs.byID[tr.MsgID]; ok && !r.bare {
		// Loaded by the task database (records.restore).
		r.restored = true
		return
	}
	r := &record{TaskRecord: TaskRecord{MsgID: tr.MsgID, Header: clone(tr.Header), Metadata: clone(tr.Metadata),
		ClientUUID: tr.ClientUUID, EngineUUID: tr.EngineUUID, Queue: tr.Queue, Submitted: tr.Submitted}, restored: true}
	if len(r.Header) == 0 {
		r.Header = json.RawMessage(`{}`)
	}
	if _, ok := rs.byID[r.MsgID]; !ok {
		rs.seq++
		r.seq = rs.seq
		rs.order = append(rs.order, r.MsgID)
	}
	rs.byID[r.MsgID] = r
}

// isRestored reports whether msgID is a pending request taken over from
// the previous controller.
func (rs *records) isRestored(msgID string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[msgID]
	return ok && r.restored && !r.done
}
