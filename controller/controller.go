package controller

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipp-hpc/ipp/controller/sched"
	"github.com/ipp-hpc/ipp/internal/procid"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// Config configures a controller. Zero values pick ipyparallel's defaults.
type Config struct {
	// IP is the address the engine-facing ports bind to (and the
	// client-facing ones unless ClientIP is set); default 127.0.0.1.
	// Binding loopback is the secure default: engines on other hosts
	// cannot reach it. "*" means every interface.
	IP string
	// ClientIP is the address the client-facing ports (everything in the
	// client connection file) bind to; default IP, as in ipyparallel.
	// With IP "*" for engines on compute nodes, ClientIP 127.0.0.1 keeps
	// clients on this host or behind an ssh tunnel, and CurveAuto then
	// leaves the client side unencrypted, so that clients without CURVE
	// (pure-Go builds) can connect while the engine side stays encrypted.
	ClientIP string
	// Location is the host name written to the connection files so peers
	// can replace a wildcard IP; default os.Hostname().
	Location string
	// ProfileDir and ClusterID locate the connection files; with an empty
	// ProfileDir no files are written.
	ProfileDir string
	ClusterID  string
	// Key signs every message; default a fresh random key.
	Key []byte
	// Scheme is the task scheduler's scheme (leastload by default).
	Scheme string
	// HWM bounds outstanding tasks per engine; 0 means the default of 1,
	// negative means unlimited.
	HWM int
	// Burst lets an engine whose recent tasks each took under 2 ms hold up
	// to Burst tasks (controller/sched Config.Burst); 0 means the default
	// of 16, negative turns it off (ipyparallel's strict hwm).
	Burst int
	// HeartbeatPeriod is the ping interval (3 s by default).
	HeartbeatPeriod time.Duration
	// HeartbeatMisses is how many consecutive missed beats declare an
	// engine dead (10 by default).
	HeartbeatMisses int
	// RegistrationTimeout drops an engine that registered but never became
	// reachable (30 s by default).
	RegistrationTimeout time.Duration
	// Transport is the socket backend; default transport.Default().
	Transport transport.Backend
	// Logger receives the controller's logs; default discards them.
	Logger *slog.Logger
	// MaxMessageSize bounds one message (all its frames) in bytes; larger
	// ones are refused with an error to the sender, and a single larger
	// frame makes the transport drop the connection. Default 4 GiB.
	MaxMessageSize int64
	// MaxConnections caps the connections each port accepts at once
	// (engines, clients, and anyone else on the network); newer ones
	// beyond it are closed. Default 16384.
	MaxConnections int
	// ResultCacheBytes bounds the result buffers and output of finished
	// tasks the hub keeps for result_request (clients that reconnect,
	// get_result); beyond it the oldest are dropped first, and one task
	// keeps at most a quarter of it as output. Default 256 MiB.
	ResultCacheBytes int64
	// MaxQueuedTasks bounds the load-balanced tasks the controller holds
	// (waiting for an engine or running on one); a submission beyond it
	// is answered at once with a QueueFull error and not queued. Default
	// DefaultMaxQueuedTasks.
	MaxQueuedTasks int
	// MaxQueuedBytes bounds the bytes of those tasks' requests, which the
	// controller keeps until each task's reply (to send it again after an
	// unmet dependency or a retry); beyond it, as MaxQueuedTasks. Default
	// DefaultMaxQueuedBytes.
	MaxQueuedBytes int64
	// Curve says whether the sockets are CurveZMQ servers (encrypted, and
	// closed to peers without the controller's public key). The default,
	// CurveAuto, decides each side by its own address: the engine side is
	// on exactly when IP is not a loopback address, the client side
	// exactly when ClientIP is not. CurveOn and CurveOff apply to both
	// sides: an explicit choice is never half-applied.
	Curve CurveMode
	// DB is the task database backend: DBMemory (the default), DBSQLite
	// or DBNone.
	DB string
	// DBPath is the sqlite file; default DBFile(ProfileDir, ClusterID).
	// DBSQLite needs one of the two.
	DBPath string
	// DBMaxRecords bounds the task records kept (in memory, and on disk
	// with DBSQLite); beyond it the oldest finished ones are deleted
	// first. Default DefaultDBMaxRecords.
	DBMaxRecords int
	// CurveSecretKey is the controller's CURVE secret key (Z85, 40
	// characters); empty means a fresh key pair per controller. Its public
	// key goes into both connection files as curve_serverkey.
	CurveSecretKey string

	// Restore makes the controller take over the cluster whose connection
	// files it finds at ProfileDir and ClusterID, left by a controller that
	// died (kill -9, a lost node): same key, interfaces, location and
	// ports, so that running engines and connected clients reconnect by
	// themselves, and the engine table of its state file (EngineStateFile)
	// so that engines keep their ids. IP, ClientIP and Location are taken
	// from the files; Key, when set, must be the files' key. A cluster
	// with CURVE needs the same CurveSecretKey. Start fails when there is
	// nothing to restore or a port is taken (the old controller is alive).
	//
	// With DBSQLite it also loads the task records the earlier controller
	// left in DBPath: finished tasks are served again by result_request and
	// db_request; tasks that were in flight complete from their engine's
	// held reply if it comes back, else fail with TaskLost. When only the
	// database is left (a controller stopped normally), the records come
	// back on a new cluster's ports. Without Restore an existing database
	// is moved aside to <file>.prev.
	Restore bool
	// RestoreGrace is how long a restored controller waits for an engine
	// of the previous one to come back before it gives up on it and fails
	// the tasks it had in flight; default DefaultRestoreGrace.
	RestoreGrace time.Duration

	// restoredTasks returns the records the task database loaded that
	// have no result (a restore fails or completes them); nil: none.
	restoredTasks func() []*TaskRecord
}

// CurveMode chooses when the controller uses CurveZMQ.
type CurveMode int

const (
	// CurveAuto turns CURVE on when the controller binds a non-loopback
	// address: traffic that leaves the host is encrypted by default.
	CurveAuto CurveMode = iota
	// CurveOn always uses CURVE.
	CurveOn
	// CurveOff never uses CURVE; messages are still signed.
	CurveOff
)

// String names the mode as the CLI flags do.
func (m CurveMode) String() string {
	switch m {
	case CurveAuto:
		return "auto"
	case CurveOn:
		return "on"
	case CurveOff:
		return "off"
	}
	return fmt.Sprintf("CurveMode(%d)", int(m))
}

// DefaultMaxMessageSize is the default Config.MaxMessageSize: generous for
// HPC data, but a bound.
const DefaultMaxMessageSize = 4 << 30

// DefaultMaxConnections is the default Config.MaxConnections: room for
// thousands of engines per port, below the descriptor limits of a login
// node.
const DefaultMaxConnections = 16384

// DefaultMaxQueuedTasks is the default Config.MaxQueuedTasks: far more
// than a map over a large input submits at once, while the scheduler's
// bookkeeping for that many tasks stays around a gigabyte.
const DefaultMaxQueuedTasks = 1_000_000

// DefaultMaxQueuedBytes is the default Config.MaxQueuedBytes: two messages
// of the default maximum size, so that one such task can wait while
// another runs, yet a client that submits and goes away cannot make the
// controller take more than that of a shared login node's memory.
const DefaultMaxQueuedBytes = 8 << 30

func (c *Config) defaults() error {
	if c.IP == "" {
		c.IP = "127.0.0.1"
	}
	if c.ClientIP == "" {
		c.ClientIP = c.IP
	}
	c.IP, c.ClientIP = bindAddress(c.IP), bindAddress(c.ClientIP)
	if c.Location == "" {
		c.Location, _ = os.Hostname()
	}
	if len(c.Key) == 0 {
		c.Key = []byte(wire.NewID())
	}
	if c.Scheme == "" {
		c.Scheme = "leastload"
	}
	if c.HWM == 0 {
		c.HWM = 1
	}
	if c.HWM < 0 {
		c.HWM = 0
	}
	if c.Burst == 0 {
		c.Burst = sched.DefaultBurst
	}
	if c.Burst < 0 {
		c.Burst = 0
	}
	if c.HeartbeatPeriod <= 0 {
		c.HeartbeatPeriod = 3 * time.Second
	}
	if c.HeartbeatMisses <= 0 {
		c.HeartbeatMisses = 10
	}
	if c.RegistrationTimeout <= 0 {
		c.RegistrationTimeout = 30 * time.Second
	}
	if c.Transport == nil {
		c.Transport = transport.Default()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.ResultCacheBytes <= 0 {
		c.ResultCacheBytes = DefaultResultCacheBytes
	}
	if c.MaxQueuedTasks <= 0 {
		c.MaxQueuedTasks = DefaultMaxQueuedTasks
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.DBMaxRecords <= 0 {
		c.DBMaxRecords = DefaultDBMaxRecords
	}
	switch c.DB {
	case "":
		c.DB = DBMemory
	case DBMemory, DBNone:
	case DBSQLite:
		if c.DBPath == "" {
			if c.ProfileDir == "" {
				return errors.New("controller: the sqlite task database needs a file: set DBPath or ProfileDir")
			}
			c.DBPath = DBFile(c.ProfileDir, c.ClusterID)
		}
	default:
		return fmt.Errorf("controller: unknown task database %q (want %s, %s or %s)", c.DB, DBSQLite, DBMemory, DBNone)
	}
	if c.RestoreGrace <= 0 {
		c.RestoreGrace = DefaultRestoreGrace
	}
	return nil
}

// resolveCurve decides CURVE for the engine side and the client side and,
// when either is on, makes sure CurveSecretKey holds a valid key (one key
// pair serves both sides).
func (c *Config) resolveCurve() (engine, client bool, err error) {
	switch c.Curve {
	case CurveAuto:
		engine, client = !isLoopback(c.IP), !isLoopback(c.ClientIP)
	case CurveOn:
		engine, client = true, true
	case CurveOff:
	default:
		return false, false, fmt.Errorf("controller: unknown Curve mode %d", int(c.Curve))
	}
	if !engine && !client {
		return false, false, nil
	}
	if c.CurveSecretKey == "" {
		_, secret, err := transport.NewCurveKeyPair()
		if err != nil {
			return false, false, fmt.Errorf("controller: %w", err)
		}
		c.CurveSecretKey = secret
	}
	if _, err := transport.CurvePublicKey(c.CurveSecretKey); err != nil {
		return false, false, fmt.Errorf("controller: %w", err)
	}
	return engine, client, nil
}

// side is one half of the controller's ports: where they bind and whether
// they are CURVE servers.
type side struct {
	name  string // "engine" or "client", for logs
	ip    string
	curve bool
}

// Controller is a running controller.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	session *wire.Session

	// engineSide and clientSide say where each half of the ports binds
	// and whether it uses CURVE; split is whether they differ (then the
	// client side has its own query ROUTER).
	engineSide, clientSide side
	split                  bool

	sockets []transport.Socket
	// Sockets by role; names follow the connection-file keys. reg is the
	// engine file's registration ROUTER, query the client file's: the
	// same socket unless the sides are split.
	reg, query, notif transport.Socket
	muxIn, muxOut     transport.Socket
	ctrlIn, ctrlOut   transport.Socket
	taskIn, taskOut   transport.Socket
	bcastIn           transport.Socket
	bcastLeaves       []transport.Socket
	iopubIn, iopubOut transport.Socket
	// iopubXPub: iopubOut reports subscriptions, so the hub's IOPub gate
	// can hold a new client's output until its subscription arrives.
	iopubXPub              bool
	hbPing, hbPong         transport.Socket
	clientInfo             wire.ClientInfo
	engineInfo             wire.EngineInfo
	clientFile, engineFile string
	hub                    *hub
	records                *records
	tasks                  *taskScheduler
	bcast                  *broadcaster
	mux, control           *relay
	rejects                *rejectLog
	mem                    *releaser
	wg                     sync.WaitGroup
	stopOnce               sync.Once
	done                   chan struct{}
	started                bool

	// restored counts the records Start loaded with Restore: finished,
	// and in flight when the previous controller died.
	restored [2]int
	// inFlightAtRestore are the loaded records that had no result; the
	// restore (restore.go) completes or fails them.
	inFlightAtRestore []*TaskRecord

	errMu sync.Mutex
	err   error // why the controller stopped, if not on request

	// prev holds the connection files of the controller being restored
	// (Config.Restore), nil otherwise.
	prev *previous
	// state persists the engine table for a later restore.
	state *engineTable
	// inflight tracks the tasks the previous controller had in flight;
	// sweep fails those of engines that never came back.
	inflight *inflight
	sweep    *time.Timer
}

// Identities of the engine-facing ROUTERs, as ipyparallel names them.
// They must differ: an engine's single shell socket connects to mux, task
// and a broadcast leaf, and libzmq routes by these names.
var (
	idMuxOut     = []byte("mux_out")
	idTaskOut    = []byte("task_out")
	idControlOut = []byte("control_out")
)

// leafIdentity is the broadcast leaf identity for leaf i of 2.
func leafIdentity(i int) []byte { return []byte("sub_scheduler_0" + strconv.Itoa(i)) }

// broadcastLeaves is the number of engine-facing broadcast ports, as with
// ipyparallel's default scheduler depth of 1.
const broadcastLeaves = 2

// New checks the configuration and prepares a controller; Start binds it.
func New(cfg Config) (*Controller, error) {
	var prev *previous
	if cfg.Restore {
		var err error
		if prev, err = loadPrevious(&cfg); err != nil {
			dbLeft := false
			if cfg.DB == DBSQLite {
				path := cfg.DBPath
				if path == "" && cfg.ProfileDir != "" {
					path = DBFile(cfg.ProfileDir, cfg.ClusterID)
				}
				_, serr := os.Stat(path)
				dbLeft = path != "" && serr == nil
			}
			if !errors.Is(err, errNothingToRestore) || !dbLeft {
				return nil, err
			}
			prev = nil
		}
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	engineCurve, clientCurve, err := cfg.resolveCurve()
	if err != nil {
		return nil, err
	}
	if prev != nil {
		if err := prev.checkCurve(engineCurve, clientCurve); err != nil {
			return nil, err
		}
	}
	if _, err := parseScheme(cfg.Scheme); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg:        cfg,
		log:        cfg.Logger,
		session:    wire.NewSession(cfg.Key, ""),
		done:       make(chan struct{}),
		engineSide: side{name: "engine", ip: cfg.IP, curve: engineCurve},
		clientSide: side{name: "client", ip: cfg.ClientIP, curve: clientCurve},
		prev:       prev,
	}
	// Equal addresses give equal CURVE decisions (CurveAuto looks at the
	// address, the other modes at nothing), so the address alone decides.
	c.split = cfg.ClientIP != cfg.IP
	c.rejects = newRejectLog(c)
	c.mem = newReleaser()
	return c, nil
}

func (c *Controller) socket(sd side, t transport.Type, identity []byte, events, hold bool, port int) (transport.Socket, int, error) {
	// Every port faces untrusted peers: identities stay with their first
	// owner (no route stealing), frames and connections are bounded.
	// Frames are sent in place: the controller forwards what it received
	// and builds the rest fresh, and never writes to a frame it has sent
	// (records keep request frames only to read or resend them).
	o := transport.Options{
		Identity:            identity,
		ExclusiveIdentities: true,
		MaxFrameSize:        c.cfg.MaxMessageSize,
		MaxConnections:      c.cfg.MaxConnections,
		Events:              events,
		InPlace:             true,
		// The mux relay's large buffers go through without a copy
		// (relay.run releases them; records copy what they keep).
		HoldBuffers: hold,
	}
	if sd.curve {
		o.Curve = &transport.Curve{Server: true, SecretKey: c.cfg.CurveSecretKey}
	}
	s, err := c.cfg.Transport.NewSocket(t, o)
	if err != nil {
		return nil, 0, fmt.Errorf("%s side: %w", sd.name, err)
	}
	c.sockets = append(c.sockets, s)
	ep, err := s.Bind("tcp://" + sd.ip + ":" + strconv.Itoa(port))
	// A port taken back on restore can still be closing (a controller in
	// this process that just stopped: libzmq closes listeners in its I/O
	// thread); a live controller holds it for good, so retry briefly.
	for deadline := time.Now().Add(2 * time.Second); err != nil && port != 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		ep, err = s.Bind("tcp://" + sd.ip + ":" + strconv.Itoa(port))
	}
	if err != nil {
		if port != 0 {
			return nil, 0, fmt.Errorf("%s side: cannot take port %d back: %w (is the cluster's controller still running? `ipcluster list` shows it)", sd.name, port, err)
		}
		return nil, 0, fmt.Errorf("%s side: %w", sd.name, err)
	}
	i := strings.LastIndexByte(ep, ':')
	bound, err := strconv.Atoi(ep[i+1:])
	if err != nil {
		return nil, 0, fmt.Errorf("bound endpoint %q has no port", ep)
	}
	return s, bound, nil
}

// Start binds every port, writes the connection files and starts serving.
func (c *Controller) Start() (err error) {
	if c.started {
		return errors.New("controller: already started")
	}
	c.started = true
	defer func() {
		if err != nil {
			c.closeSockets()
			if c.records != nil && c.records.store != nil {
				c.records.store.close()
			}
		}
	}()
	type bind struct {
		dst  *transport.Socket
		port *int
		typ  transport.Type
		id   []byte
		side side
	}
	ci, ei := &c.clientInfo, &c.engineInfo
	cs, es := c.clientSide, c.engineSide
	var leafPorts [broadcastLeaves]int
	c.bcastLeaves = make([]transport.Socket, broadcastLeaves)
	binds := []bind{
		{&c.reg, &ei.Registration, transport.Router, nil, es},
		{&c.notif, &ci.Notification, transport.Pub, nil, cs},
		{&c.muxIn, &ci.Mux, transport.Router, []byte("mux_in"), cs},
		{&c.muxOut, &ei.Mux, transport.Router, idMuxOut, es},
		{&c.ctrlIn, &ci.Control, transport.Router, []byte("control_in"), cs},
		{&c.ctrlOut, &ei.Control, transport.Router, idControlOut, es},
		{&c.taskIn, &ci.Task, transport.Router, []byte("task_in"), cs},
		{&c.taskOut, &ei.Task, transport.Router, idTaskOut, es},
		{&c.bcastIn, &ci.Broadcast, transport.Router, []byte("sub_scheduler_0"), cs},
		{&c.iopubIn, &ei.IOPub, transport.Sub, nil, es},
		{&c.iopubOut, &ci.IOPub, transport.XPub, nil, cs},
		{&c.hbPing, &ei.HBPing, transport.Pub, nil, es},
		{&c.hbPong, &ei.HBPong, transport.Router, nil, es},
	}
	if c.split {
		// Clients get their own query ROUTER on their side; the hub
		// answers each request on the socket it came in on.
		binds = append(binds, bind{&c.query, &ci.Registration, transport.Router, nil, cs})
	}
	for i := range c.bcastLeaves {
		binds = append(binds, bind{&c.bcastLeaves[i], &leafPorts[i], transport.Router, leafIdentity(i), es})
	}
	var want map[*int]int
	if c.prev != nil {
		if want, err = c.prev.ports(ci, ei, leafPorts[:], c.split); err != nil {
			return err
		}
	}
	for _, b := range binds {
		s, port, err := c.socket(b.side, b.typ, b.id, b.dst == &c.hbPong, b.dst == &c.muxIn || b.dst == &c.muxOut, want[b.port])
		if b.typ == transport.XPub && errors.Is(err, transport.ErrNoXPub) {
			// Without subscription reports the IOPub gate stays off
			// (iopubgate.go): output is published at once, racing a
			// new client's subscription as in ipyparallel.
			s, port, err = c.socket(b.side, transport.Pub, b.id, false, false, want[b.port])
		} else if b.typ == transport.XPub {
			c.iopubXPub = true
		}
		if err != nil {
			if c.prev != nil {
				return fmt.Errorf("controller: cannot restore: %w", err)
			}
			return fmt.Errorf("controller: %w", err)
		}
		*b.dst, *b.port = s, port
	}
	if !c.split {
		c.query, ci.Registration = c.reg, ei.Registration
	}
	ei.Broadcast = leafPorts[:]
	// When either side uses CURVE the key was checked in resolveCurve;
	// otherwise pub is unused.
	pub, _ := transport.CurvePublicKey(c.cfg.CurveSecretKey)
	for _, f := range []struct {
		dst *wire.Common
		sd  side
	}{{&ci.Common, cs}, {&ei.Common, es}} {
		common := wire.Common{
			Interface: "tcp://" + f.sd.ip,
			Key:       string(c.cfg.Key),
			Location:  c.cfg.Location,
		}
		common.Defaults()
		if f.sd.curve {
			common.CurveServerKey = &pub
		}
		dst := f.dst
		mux, ctl, task, io, reg := dst.Mux, dst.Control, dst.Task, dst.IOPub, dst.Registration
		*dst = common
		dst.Mux, dst.Control, dst.Task, dst.IOPub, dst.Registration = mux, ctl, task, io, reg
	}
	ci.TaskScheme = c.cfg.Scheme
	// Without /proc the fields stay empty and clients do without them.
	if self, err := procid.Self(); err == nil {
		ci.ControllerPID, ci.ControllerStart, ci.ControllerHost = self.PID, self.Start, self.Host
	}

	// Components get what they use; engine arrival and departure reach
	// them as hub events, in this order.
	if err := c.openRecords(); err != nil {
		return err
	}
	c.hub = newHub(c, c.records)
	c.tasks, err = newTaskScheduler(c, c.records)
	if err != nil {
		return err
	}
	c.hub.tasks = c.tasks
	c.bcast = newBroadcaster(c, c.hub.liveID, c.hub.departedRecently)
	c.mux = newRelay(c, c.hub, "mux", c.muxIn, c.muxOut, true)
	c.control = newRelay(c, c.hub, "control", c.ctrlIn, c.ctrlOut, false)
	c.hub.listen(c.tasks, c.bcast, c.control)
	if err := c.startRestore(); err != nil {
		return err
	}
	if c.cfg.ProfileDir != "" {
		c.clientFile = wire.ClientFile(c.cfg.ProfileDir, c.cfg.ClusterID)
		c.engineFile = wire.EngineFile(c.cfg.ProfileDir, c.cfg.ClusterID)
		if err := wire.WritePrivateJSON(c.engineFile, ei); err != nil {
			return fmt.Errorf("controller: writing %s: %w", c.engineFile, err)
		}
		if err := wire.WritePrivateJSON(c.clientFile, ci); err != nil {
			return fmt.Errorf("controller: writing %s: %w", c.clientFile, err)
		}
	}
	// Written before any engine can register: from now on a restore can
	// find this controller's ports and key even without its files.
	c.hub.writeEnginesNow()
	c.goServe("registration", func() { c.hub.serveRegistration("registration", c.reg) })
	if c.split {
		c.goServe("client registration", func() { c.hub.serveRegistration("client_registration", c.query) })
	}
	c.goServe("heartbeat", c.hub.serveHeartbeat)
	c.goServe("iopub", c.hub.serveIOPub)
	c.goServe("iopub subscriptions", c.hub.serveSubscriptions)
	c.goServe("mux", c.mux.run)
	c.goServe("control", c.control.run)
	c.goServe("task", c.tasks.run)
	c.goServe("broadcast", c.bcast.run)
	c.log.Info("controller listening", "engine_ip", es.ip, "engine_curve", es.curve, "engine_registration", ei.Registration,
		"client_ip", cs.ip, "client_curve", cs.curve, "client_registration", ci.Registration,
		"client_file", c.clientFile, "engine_file", c.engineFile, "scheme", c.cfg.Scheme)
	if es.curve || cs.curve {
		c.log.Info("CURVE encryption", "curve_serverkey", pub, "engine_side", onOff(es.curve), "client_side", onOff(cs.curve))
	}
	// One line per side: where it listens, who can reach it, encrypted
	// or not. Unsplit, the one line covers both.
	type view struct {
		what, who string
		sd        side
	}
	views := []view{{"controller", "engines and clients", es}}
	if c.split {
		views = []view{{"engine side", "engines", es}, {"client side", "clients", cs}}
	}
	for _, v := range views {
		switch ip := v.sd.ip; {
		case isLoopback(ip) && v.sd.curve:
			c.log.Info(v.what+" bound to loopback, encrypted (CURVE): only "+v.who+" on this host or through an ssh tunnel can connect, and they need CURVE", "ip", ip)
		case isLoopback(ip):
			c.log.Info(v.what+" bound to loopback, unencrypted: only "+v.who+" on this host or through an ssh tunnel can connect", "ip", ip)
		case v.sd.curve:
			c.log.Info(v.what+" open to the network, encrypted (CURVE): "+v.who+" need curve_serverkey from their connection file", "ip", ip)
		default:
			c.log.Warn(v.what+" open to the network with CURVE encryption off: code, data, results and output cross the network readable; signatures still stop forgery", "ip", ip)
		}
	}
	if isLoopback(es.ip) {
		c.log.Info("engines on other hosts cannot connect; use --ip to accept remote engines")
	}
	return nil
}

// openRecords makes the task-record store of the configured backend and,
// with Restore, loads what the previous controller left in it.
func (c *Controller) openRecords() error {
	rs := newRecords(c.cfg.ResultCacheBytes)
	rs.mode, rs.maxRecords = c.cfg.DB, c.cfg.DBMaxRecords
	if c.cfg.DB == DBSQLite {
		st, err := openSQLite(c.cfg.DBPath, c.cfg.Restore, c.log)
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		rs.store = st
		if c.cfg.Restore {
			finished, inflight, err := rs.restore()
			if err != nil {
				st.close()
				return fmt.Errorf("controller: restoring task records: %w", err)
			}
			c.restored = [2]int{finished, len(inflight)}
			c.inFlightAtRestore = inflight
			c.log.Info("task records restored", "file", c.cfg.DBPath, "finished", finished, "in_flight", len(inflight))
		}
	}
	c.records = rs
	c.log.Info("task database", "backend", c.cfg.DB, "file", c.cfg.DBPath, "max_records", c.cfg.DBMaxRecords)
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// bindAddress turns the names users give into addresses libzmq binds:
// "*" is every interface, and "localhost" (which libzmq would take for
// an interface name and fail on) is 127.0.0.1.
func bindAddress(ip string) string {
	switch ip {
	case "*":
		return "0.0.0.0"
	case "localhost":
		return "127.0.0.1"
	}
	return ip
}

func isLoopback(ip string) bool {
	return strings.HasPrefix(ip, "127.") || ip == "localhost" || ip == "::1"
}

// goServe runs a serving loop; a panic in one is logged and shuts the
// controller down instead of leaving a half-working process.
func (c *Controller) goServe(name string, fn func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				c.log.Error("controller loop crashed", "loop", name, "panic", r, "stack", string(debug.Stack()))
				c.fail(fmt.Errorf("controller: %s loop crashed: %v", name, r))
				go c.Close()
			}
		}()
		fn()
	}()
}

// fail records why the controller is stopping; the first reason wins.
func (c *Controller) fail(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

// Err is why the controller stopped when it was not asked to (a serving
// loop crashed), or nil. Read it after Done is closed.
func (c *Controller) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Restored reports what Start loaded with Config.Restore: the records of
// finished tasks, and those of tasks that were in flight when the
// previous controller stopped (now failed with an EngineError saying the
// controller restarted).
func (c *Controller) Restored() (finished, failedInFlight int) { return c.restored[0], c.restored[1] }

// DBPath is the sqlite task database file, or "" with another backend.
func (c *Controller) DBPath() string {
	if c.cfg.DB != DBSQLite {
		return ""
	}
	return c.cfg.DBPath
}

// Refused counts the messages refused so far (bad signatures, replays,
// unexpected replies, unknown senders), for tests and monitoring.
func (c *Controller) Refused() uint64 { return c.rejects.count() }

// CurveEnabled reports whether the controller's engine-facing sockets
// (everything in the engine connection file) use CurveZMQ. Without
// ClientIP both sides are the same.
func (c *Controller) CurveEnabled() bool { return c.engineSide.curve }

// ClientCurveEnabled reports whether the client-facing sockets
// (everything in the client connection file) use CurveZMQ.
func (c *Controller) ClientCurveEnabled() bool { return c.clientSide.curve }

// ClientInfo is the content of the client connection file.
func (c *Controller) ClientInfo() *wire.ClientInfo { ci := c.clientInfo; return &ci }

// EngineInfo is the content of the engine connection file.
func (c *Controller) EngineInfo() *wire.EngineInfo {
	ei := c.engineInfo
	ei.Broadcast = append([]int(nil), ei.Broadcast...)
	return &ei
}

// ClientFile and EngineFile are the paths written, or "".
func (c *Controller) ClientFile() string { return c.clientFile }

// EngineFile is the engine connection file's path, or "".
func (c *Controller) EngineFile() string { return c.engineFile }

// Done is closed when the controller has stopped, after Close or a hub
// shutdown_request from a client.
func (c *Controller) Done() <-chan struct{} { return c.done }

// Close stops every loop, closes the sockets and removes the connection
// files it wrote.
func (c *Controller) Close() error {
	c.stopOnce.Do(func() {
		if c.hub != nil {
			c.hub.stop()
		}
		if c.sweep != nil {
			c.sweep.Stop()
		}
		if c.tasks != nil {
			c.tasks.stop()
		}
		c.closeSockets()
		c.wg.Wait()
		// After the loops: their last changes are written too.
		if c.records != nil && c.records.store != nil {
			if err := c.records.store.close(); err != nil {
				c.log.Error("closing the task database", "file", c.cfg.DBPath, "err", err)
			}
		}
		for _, f := range []string{c.clientFile, c.engineFile} {
			if f != "" {
				os.Remove(f)
			}
		}
		if c.state != nil {
			// A stopped cluster cannot be restored (its connection files
			// are gone too); the table must not outlive it.
			c.state.remove()
		}
		c.log.Info("controller stopped")
		close(c.done)
	})
	return nil
}

func (c *Controller) closeSockets() {
	var wg sync.WaitGroup
	for _, s := range c.sockets {
		wg.Add(1)
		go func(s transport.Socket) { defer wg.Done(); s.Close() }(s)
	}
	wg.Wait()
}

// EngineStatus describes one registered engine.
type EngineStatus struct {
	ID   int
	UUID string
	// Info is what the engine reported at registration (Go engines), raw JSON.
	Info []byte
}

// Engines lists the registered engines in id order.
func (c *Controller) Engines() []EngineStatus { return c.hub.engineList() }
