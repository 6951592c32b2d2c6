package ipp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/sshx"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// A controller on a login node usually listens on that node's loopback or
// internal network, which a laptop cannot reach. The client then forwards
// every client-facing port of the connection file through the system ssh
// (package sshx: the user's ~/.ssh/config, keys, agent and ProxyJump apply)
// and connects its ZeroMQ sockets to the local ends.
//
// Tunnels drop: the laptop sleeps, Wi-Fi changes, the ssh master is killed.
// sshx re-establishes the forwards on the same local ports and the ZeroMQ
// sockets reconnect by themselves, but whatever the controller's ROUTER
// sockets sent to us while we were away is gone: a ROUTER drops messages
// for a peer that is not connected, and the new connections carry new
// routing identities, so replies to requests sent before the drop go
// nowhere even after it. The hub keeps every result, though. After a
// reconnection the client therefore asks the hub (result_request) for the
// requests still outstanding, completes them from its records, and asks
// for the engine list again (notifications of the gap are lost too).
// IOPub output published during the gap is lost; results recovered from
// the hub carry the stdout and stderr the hub recorded.

// WithSSH reaches the controller through SSH port forwards via host
// ("login.hpc", "me@login.hpc", "login.hpc:2222", or a Host alias of
// ~/.ssh/config), overriding the connection file's ssh field. The
// controller's address in the file is taken as seen from host: a
// controller listening on 127.0.0.1, or on all interfaces (0.0.0.0, *), is
// reached on host's own loopback, so host should be the machine the
// controller runs on; one listening on a specific address is reached at
// that address from host. WithSSH("") connects directly even if the file
// names an ssh server.
//
// Without WithSSH the file's ssh field (as ipyparallel writes it with
// ipcontroller --ssh) is honoured, except when the file says the controller
// runs on this very machine (its location is this host's name) and listens
// on loopback or all interfaces: it is reachable directly then, and
// ipyparallel skips the tunnel in that case too.
//
// The ssh program is the system's (IPP_SSH replaces it, IPP_SSH_ARGS adds
// arguments). Connect waits up to 2 minutes for ssh to log in (long enough
// to type a passphrase), but gives up on an unreachable host after the
// connect timeout (WithConnectTimeout). The tunnel is closed by Close.
func WithSSH(host string) Option {
	return func(c *clientConfig) { c.ssh = &host }
}

// WithReconnectTimeout bounds how long a client connected through an SSH
// tunnel waits for a dropped tunnel to come back (default 60 s). While the
// tunnel is down, requests are queued, results are waited for and the
// keepalive does not declare the controller lost; after d without a word
// from the controller the client closes with an error wrapping
// ErrControllerLost. A controller that died behind a working tunnel (its
// port refuses connections) is reported as quickly as without a tunnel.
//
// A client connected directly waits only when given this option: then a
// controller that goes silent (killed, and restarted on the same ports
// with ipcluster start --restore) is waited for up to d, and once it
// answers again the outstanding requests are recovered from its records
// (result_request), sent again if it never received them, or fail with
// the error it recorded (TaskLost for a task it could not account for).
// Without the option a direct client reports a dead controller after the
// keepalive's few seconds, as before.
func WithReconnectTimeout(d time.Duration) Option {
	return func(c *clientConfig) { c.reconnectTimeout = d }
}

// ErrReplyLost is wrapped by the error of a request whose reply cannot be
// recovered after the connection to the controller dropped: the
// controller has no record of it (the request was lost on the way and did
// not run, or it was a broadcast, which the hub does not record), or a hub
// query or control request whose answer went to the old connection.
var ErrReplyLost = errors.New("ipp: reply lost while the connection to the controller was down")

const (
	defaultReconnectTimeout = 60 * time.Second
	// sshLoginTimeout bounds establishing the tunnel, passphrase included.
	sshLoginTimeout = 2 * time.Minute
	// recoverInterval is how often the hub is asked about requests whose
	// replies may have been dropped.
	recoverInterval = 500 * time.Millisecond
	// resendAfter is how long a request the hub does not know waits
	// before it is sent again: one queued in a socket while the tunnel was
	// down reaches the hub only after the reconnection, maybe after our
	// question.
	resendAfter = time.Second
	// unknownGrace is how long a request the hub does not know (after it
	// was sent again, if it could be) stays outstanding before it fails
	// with ErrReplyLost.
	unknownGrace = 10 * time.Second
	// waiterGrace is how long hub queries and control requests that were
	// outstanding at a reconnection may still be answered.
	waiterGrace = 10 * time.Second
)

// clientTunnel is a client's SSH tunnel and the recovery after it drops.
type clientTunnel struct {
	dest   string // the ssh destination as given
	remote string // the hub's address as the ssh host sees it, for messages
	host   *sshx.Host
	t      *sshx.Tunnel
	// regLocal is the local end of the registration port, dialled to tell
	// a tunnel that is down from a controller that is gone.
	regLocal string
	timeout  time.Duration

	kick chan struct{} // buffered: a resync is waiting

	mu sync.Mutex
	// orphans are requests outstanding at a reconnection.
	orphans map[string]*orphan
	// sent keeps the frames of outstanding direct and load-balanced
	// requests, to send again one that the controller never received.
	sent   map[string]sentRequest
	pruned time.Time
	// waiters outstanding at a reconnection, with their deadline.
	waiters map[*waiter]time.Time
	// refresh: the engine list must be asked for again.
	refresh bool
	// missing: engines absent from the list since when, for a direct
	// client: a restarted controller lists an engine only once it came
	// back.
	missing map[int]time.Time
	resyncs int
	// recovered counts results completed from the hub's records.
	recovered atomic.Int64
}

// orphan is a request outstanding at a reconnection.
type orphan struct {
	// unknownSince is when the hub first said it had no record of the
	// request (zero while it has one).
	unknownSince time.Time
	resent       bool
}

// sentRequest is a request as it was sent, and where.
type sentRequest struct {
	sock   transport.Socket
	frames [][]byte
}

// remember keeps a request's frames until it completes. The frames are
// the signed message itself: sent again, it is either the first copy
// the controller sees, or refused by its replay guard (the signature was
// seen), so a request never runs twice.
func (t *clientTunnel) remember(msgID string, s transport.Socket, frames [][]byte) {
	t.mu.Lock()
	t.sent[msgID] = sentRequest{sock: s, frames: frames}
	t.mu.Unlock()
}

// sshDestination picks the ssh server to tunnel through, or "".
func sshDestination(info *wire.ClientInfo, cfg *clientConfig) string {
	if cfg.ssh != nil {
		return strings.TrimSpace(*cfg.ssh)
	}
	dest := strings.TrimSpace(info.SSH)
	if dest == "" {
		return ""
	}
	if h, _ := os.Hostname(); h != "" && info.Location == h {
		if host, err := interfaceHost(info.Interface); err == nil && (isWildcard(host) || isLoopback(host)) {
			return ""
		}
	}
	return dest
}

// interfaceHost is the address part of a tcp:// interface.
func interfaceHost(iface string) (string, error) {
	proto, host, ok := strings.Cut(iface, "://")
	if !ok || proto != "tcp" {
		return "", fmt.Errorf("ipp: cannot tunnel interface %q through ssh: only tcp:// addresses can be forwarded", iface)
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), nil
}

func isWildcard(host string) bool {
	return host == "*" || host == "0.0.0.0" || host == "::" || host == ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tunnelTarget is where the ssh host reaches the controller: the
// interface address, with a wildcard meaning the ssh host's own loopback
// (the controller listens on all of its host's interfaces, and the ssh
// host is taken to be that host).
func tunnelTarget(info *wire.ClientInfo) (string, error) {
	host, err := interfaceHost(info.Interface)
	if err != nil {
		return "", err
	}
	switch {
	case host == "::":
		return "::1", nil
	case isWildcard(host):
		return "127.0.0.1", nil
	}
	return host, nil
}

// openTunnel forwards the controller's client ports when an ssh server
// applies, and returns the connection info to dial: the same file with
// every port replaced by its local end on 127.0.0.1.
func (c *Client) openTunnel(ctx context.Context, info *wire.ClientInfo) (*wire.ClientInfo, error) {
	dest := sshDestination(info, &c.cfg)
	if dest == "" {
		if c.cfg.reconnectTimeout > 0 {
			// Direct, but asked to wait for a controller that comes
			// back (restarted with ipcluster start --restore): the same
			// recovery as after a tunnel drop, without a tunnel.
			c.tun = newRecovery("", info.URL(info.Registration), c.cfg.reconnectTimeout)
		}
		return info, nil
	}
	target, err := tunnelTarget(info)
	if err != nil {
		return nil, err
	}
	// ConnectTimeout bounds the TCP connection and the key exchange (a
	// host that does not answer), not the login itself, which may wait
	// for a passphrase.
	secs := int((c.cfg.connectTimeout + time.Second - 1) / time.Second)
	host, err := sshx.New(dest, "-o", "ConnectTimeout="+strconv.Itoa(max(secs, 1)))
	if err != nil {
		return nil, fmt.Errorf("ipp: ssh server %q: %w", dest, err)
	}
	ports := []*int{&info.Registration, &info.Mux, &info.Task, &info.Control, &info.IOPub, &info.Notification, &info.Broadcast}
	local := *info
	lports := []*int{&local.Registration, &local.Mux, &local.Task, &local.Control, &local.IOPub, &local.Notification, &local.Broadcast}
	var fwds []sshx.Forward
	index := map[int]int{} // remote port -> forward
	for _, p := range ports {
		if *p == 0 {
			continue
		}
		if _, ok := index[*p]; !ok {
			index[*p] = len(fwds)
			fwds = append(fwds, sshx.Forward{Remote: net.JoinHostPort(target, strconv.Itoa(*p))})
		}
	}
	lctx, cancel := context.WithTimeout(ctx, sshLoginTimeout)
	defer cancel()
	c.log.Debug("opening ssh tunnel", "ssh", dest, "target", target, "ports", len(fwds))
	t, err := host.Forward(lctx, fwds, c.log.With("ssh", dest))
	if err != nil {
		return nil, fmt.Errorf("ipp: ssh tunnel to the controller through %s: %w", dest, err)
	}
	locals := t.Locals()
	for i, p := range ports {
		if *p == 0 {
			continue
		}
		_, lp, _ := net.SplitHostPort(locals[index[*p]])
		*lports[i], _ = strconv.Atoi(lp)
	}
	local.Interface = "tcp://127.0.0.1"
	c.tun = newRecovery(dest, "tcp://"+net.JoinHostPort(target, strconv.Itoa(info.Registration)), c.cfg.reconnectTimeout)
	c.tun.host, c.tun.t, c.tun.regLocal = host, t, locals[index[info.Registration]]
	c.info = &local
	c.log.Debug("connected through ssh tunnel", "ssh", dest, "controller", c.tun.remote, "local", c.tun.regLocal)
	return &local, nil
}

// newRecovery is the recovery state of a client through an ssh tunnel to
// dest, or of a direct client that waits for its controller (dest "").
func newRecovery(dest, remote string, timeout time.Duration) *clientTunnel {
	if timeout <= 0 {
		timeout = defaultReconnectTimeout
	}
	return &clientTunnel{
		dest:    dest,
		remote:  remote,
		timeout: timeout,
		kick:    make(chan struct{}, 1),
		orphans: map[string]*orphan{},
		sent:    map[string]sentRequest{},
		waiters: map[*waiter]time.Time{},
		missing: map[int]time.Time{},
	}
}

// controllerAddr names the controller for messages: its registration
// address, and the ssh server when it is reached through a tunnel.
func (c *Client) controllerAddr() string {
	if c.tun != nil && c.tun.t != nil {
		return fmt.Sprintf("%s on %s (through an ssh tunnel, local end %s)", c.tun.remote, c.tun.dest, c.tun.regLocal)
	}
	return c.info.URL(c.info.Registration)
}

// closeTunnel removes the forwards. The ssh master connection is left to
// expire (sshx.ControlPersist): another client or ipcluster command may be
// using it.
func (c *Client) closeTunnel() {
	if c.tun == nil || c.tun.t == nil {
		return
	}
	if err := c.tun.t.Close(); err != nil {
		c.log.Debug("closing ssh tunnel", "err", err)
	}
}

// Tunnel is the ssh server the client reaches the controller through, or
// "" when it connects directly.
func (c *Client) Tunnel() string {
	if c.tun == nil {
		return ""
	}
	return c.tun.dest
}

// Reconnects counts how often the client's ssh tunnel was re-established
// after dropping (0 without a tunnel).
func (c *Client) Reconnects() int {
	if c.tun == nil || c.tun.t == nil {
		return 0
	}
	return c.tun.t.Reconnects()
}

// tunnelHold decides, for a controller silent for silence despite the
// keepalive probes, whether to keep waiting (the tunnel is down or coming
// back) or to give up; detail completes the give-up message.
func (c *Client) tunnelHold(silence time.Duration) (hold bool, detail string) {
	tun := c.tun
	if tun.t == nil {
		if silence >= tun.timeout {
			return false, fmt.Sprintf("; it did not come back within %v (WithReconnectTimeout)", tun.timeout)
		}
		return true, ""
	}
	if silence >= tun.timeout {
		detail = fmt.Sprintf("; the ssh tunnel through %s did not bring it back within %v (WithReconnectTimeout)", tun.dest, tun.timeout)
		if err := tun.t.Err(); err != nil {
			detail += ": " + err.Error()
		}
		return false, detail
	}
	if tun.peerRefuses() {
		return false, fmt.Sprintf("; the ssh tunnel through %s is up but %s refuses connections (the controller is not running)", tun.dest, tun.remote)
	}
	return true, ""
}

// peerRefuses reports whether the ssh host itself is reached but the
// controller's port there is closed. A ZeroMQ peer greets first, so a
// connection through the tunnel that reads a byte reaches a live
// controller; one that is closed at once is ssh failing to connect to
// the controller's port on the far side. A refused local port (ssh is
// reconnecting) or no answer (network gone) is not a verdict.
func (t *clientTunnel) peerRefuses() bool {
	conn, err := net.DialTimeout("tcp", t.regLocal, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	n, err := conn.Read(b[:])
	if n > 0 || err == nil {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// reconnected is called when the connection to the controller came back (the
// tunnel was re-established, or the controller answered again after a
// silence): every request outstanding now may have lost its reply, and
// the engine list may be stale.
func (c *Client) reconnected(why string) {
	tun := c.tun
	c.mu.Lock()
	ids := make([]string, 0, len(c.futures))
	for id := range c.futures {
		ids = append(ids, id)
	}
	waiters := make([]*waiter, 0, len(c.waiters))
	for _, w := range c.waiters {
		waiters = append(waiters, w)
	}
	c.mu.Unlock()
	deadline := time.Now().Add(waiterGrace)
	tun.mu.Lock()
	for _, id := range ids {
		if _, ok := tun.orphans[id]; !ok {
			tun.orphans[id] = &orphan{}
		}
	}
	for _, w := range waiters {
		if _, ok := tun.waiters[w]; !ok {
			tun.waiters[w] = deadline
		}
	}
	tun.refresh = true
	tun.resyncs++
	tun.mu.Unlock()
	c.log.Info("connection to the controller is back; recovering replies", "why", why, "outstanding", len(ids), "ssh", tun.dest)
	select {
	case tun.kick <- struct{}{}:
	default:
	}
}

// watchTunnel notices reconnections of the tunnel and recovers what they
// may have lost, until the client closes.
func (c *Client) watchTunnel() {
	defer c.wg.Done()
	tun := c.tun
	seen := c.Reconnects()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-c.done:
			return
		case <-tun.kick:
			last = time.Time{}
		case <-tick.C:
		}
		if n := c.Reconnects(); n != seen {
			seen = n
			c.reconnected("the ssh tunnel was re-established")
			last = time.Time{}
		}
		c.expireWaiters()
		c.pruneSent()
		if time.Since(last) < recoverInterval {
			continue
		}
		last = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.refreshEngines(ctx)
		c.recoverOrphans(ctx)
		cancel()
	}
}

// expireWaiters fails hub queries and control requests outstanding at a
// reconnection that are still unanswered after waiterGrace: their replies
// went to the old connection.
func (c *Client) expireWaiters() {
	tun := c.tun
	now := time.Now()
	var expired []*waiter
	tun.mu.Lock()
	for w, dl := range tun.waiters {
		if now.After(dl) {
			expired = append(expired, w)
			delete(tun.waiters, w)
		}
	}
	tun.mu.Unlock()
	if len(expired) == 0 {
		return
	}
	c.mu.Lock()
	var fail []*waiter
	for id, w := range c.waiters {
		if slices.Contains(expired, w) {
			delete(c.waiters, id)
			fail = append(fail, w)
		}
	}
	c.mu.Unlock()
	for _, w := range fail {
		w.deliver(waitResult{err: fmt.Errorf("%w: no reply to %s after the connection to the controller came back; send it again", ErrReplyLost, w.msgType)})
	}
}

// pruneSent drops the frames of requests that completed, once a second.
func (c *Client) pruneSent() {
	tun := c.tun
	tun.mu.Lock()
	defer tun.mu.Unlock()
	if time.Since(tun.pruned) < time.Second {
		return
	}
	tun.pruned = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range tun.sent {
		if c.futures[id] == nil {
			delete(tun.sent, id)
		}
	}
}

// refreshEngines asks for the engine list after a reconnection: engines
// that registered or left while the tunnel was down were announced on a
// notification socket that was not connected.
func (c *Client) refreshEngines(ctx context.Context) {
	tun := c.tun
	tun.mu.Lock()
	need := tun.refresh
	tun.mu.Unlock()
	if !need {
		return
	}
	// Only engines known before the question can be judged gone by the
	// answer: one registered after it is simply not in it yet.
	c.mu.Lock()
	before := make(map[int]string, len(c.engines))
	for id, u := range c.engines {
		before[id] = u
	}
	c.mu.Unlock()
	reply, err := c.hubQuery(ctx, "connection_request", map[string]any{})
	if err != nil {
		c.log.Debug("engine list after reconnection", "err", err)
		return
	}
	var cr struct {
		Engines map[string]string `json:"engines"`
	}
	if err := reply.DecodeContent(&cr); err != nil {
		c.log.Warn("engine list after reconnection", "err", err)
		return
	}
	c.mergeEngines(cr.Engines)
	now := time.Now()
	var gone []int
	tun.mu.Lock()
	tun.refresh = false
	for id, u := range before {
		if cr.Engines[strconv.Itoa(id)] == u {
			delete(tun.missing, id)
			continue
		}
		if tun.t == nil {
			// A direct client's controller was restarted: its engines
			// come back one by one. Ask again until this one is back or
			// has been missing for the reconnect timeout.
			since, ok := tun.missing[id]
			if !ok {
				tun.missing[id] = now
			}
			if !ok || now.Sub(since) < tun.timeout {
				tun.refresh = true
				continue
			}
			delete(tun.missing, id)
		}
		gone = append(gone, id)
	}
	tun.mu.Unlock()
	for _, id := range gone {
		c.unregistered(id, before[id])
	}
}

// recoverOrphans asks the hub about the requests outstanding at a
// reconnection and completes those it has results for.
func (c *Client) recoverOrphans(ctx context.Context) {
	tun := c.tun
	tun.mu.Lock()
	ids := make([]string, 0, len(tun.orphans))
	c.mu.Lock()
	for id := range tun.orphans {
		if c.futures[id] == nil {
			delete(tun.orphans, id) // completed on its own, or failed
			continue
		}
		ids = append(ids, id)
	}
	c.mu.Unlock()
	tun.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	slices.Sort(ids)
	rs, err := c.ResultStatus(ctx, ids...)
	var unknown []string
	if err != nil {
		var he *HubError
		if !errors.As(err, &he) {
			c.log.Debug("result status after reconnection", "err", err)
			return
		}
		// One id the hub does not know spoils the whole question: ask
		// one by one.
		rs = &ResultStatus{}
		for _, id := range ids {
			one, err := c.ResultStatus(ctx, id)
			switch {
			case err == nil:
				rs.Pending = append(rs.Pending, one.Pending...)
				rs.Completed = append(rs.Completed, one.Completed...)
			case errors.As(err, &he):
				unknown = append(unknown, id)
			default:
				c.log.Debug("result status after reconnection", "err", err)
				return
			}
		}
	}
	now := time.Now()
	var lost []string
	var resend []sentRequest
	tun.mu.Lock()
	// The hub knows these: they arrived, and will not be sent again.
	for _, id := range append(slices.Clone(rs.Pending), rs.Completed...) {
		if o, ok := tun.orphans[id]; ok {
			o.unknownSince = time.Time{}
		}
		delete(tun.sent, id)
	}
	for _, id := range unknown {
		o, ok := tun.orphans[id]
		if !ok {
			continue
		}
		sent, haveFrames := tun.sent[id]
		switch {
		case o.unknownSince.IsZero():
			o.unknownSince = now
		case !o.resent && haveFrames && now.Sub(o.unknownSince) >= resendAfter:
			// Still unknown well after the reconnection: it was lost in
			// the connection that dropped. It never ran: send it again.
			o.resent = true
			o.unknownSince = now
			resend = append(resend, sent)
			c.log.Info("request lost in the tunnel drop; sending it again", "msg_id", id)
		case now.Sub(o.unknownSince) >= unknownGrace:
			lost = append(lost, id)
			delete(tun.orphans, id)
			delete(tun.sent, id)
		}
	}
	tun.mu.Unlock()
	for _, r := range resend {
		if err := r.sock.Send(r.frames); err != nil {
			c.log.Debug("sending a lost request again", "err", err)
		}
	}
	for _, id := range rs.Completed {
		if err := c.fetchResult(ctx, id); err != nil {
			c.log.Debug("fetching result after reconnection", "msg_id", id, "err", err)
		}
	}
	for _, id := range lost {
		c.mu.Lock()
		f := c.futures[id]
		c.mu.Unlock()
		if f != nil {
			f.fail(fmt.Errorf("%w: the controller has no record of request %s (a broadcast, which the hub does not record, or a request lost on its way, which did not run)", ErrReplyLost, id))
		}
	}
}

// recordedResult is one entry of a result_reply.
type recordedResult struct {
	ResultHeader   json.RawMessage `json:"result_header"`
	ResultMetadata json.RawMessage `json:"result_metadata"`
	ResultContent  json.RawMessage `json:"result_content"`
	IO             struct {
		Stdout        string         `json:"stdout"`
		Stderr        string         `json:"stderr"`
		ExecuteResult map[string]any `json:"execute_result"`
	} `json:"io"`
}

// fetchResult completes a request from the hub's record of its reply.
func (c *Client) fetchResult(ctx context.Context, id string) error {
	msg, err := c.hubQuery(ctx, "result_request", map[string]any{"msg_ids": []string{id}, "status_only": false})
	if err != nil {
		var he *HubError
		if errors.As(err, &he) {
			// Kept no longer (the controller's --result-cache) or purged:
			// nothing will ever bring this result.
			c.mu.Lock()
			f := c.futures[id]
			c.mu.Unlock()
			if f != nil {
				f.fail(fmt.Errorf("%w: %w", ErrReplyLost, err))
			}
			c.forgetOrphan(id)
		}
		return err
	}
	var raw map[string]json.RawMessage
	if err := msg.DecodeContent(&raw); err != nil {
		return err
	}
	var rec recordedResult
	if err := json.Unmarshal(raw[id], &rec); err != nil {
		return fmt.Errorf("ipp: result_reply for %s: %w", id, err)
	}
	if len(rec.ResultContent) == 0 || string(rec.ResultContent) == "null" {
		return fmt.Errorf("ipp: result_reply for %s has no result", id)
	}
	reply := &wire.Message{Metadata: rec.ResultMetadata, Content: rec.ResultContent, Buffers: msg.Buffers}
	if len(rec.ResultHeader) > 0 {
		_ = json.Unmarshal(rec.ResultHeader, &reply.Header)
	}
	reply.Parent.MsgID = id
	c.mu.Lock()
	f := c.futures[id]
	c.mu.Unlock()
	c.forgetOrphan(id)
	if f == nil {
		return nil
	}
	f.mu.Lock()
	if f.finished || f.replied {
		// The reply came by itself meanwhile.
		f.mu.Unlock()
		return nil
	}
	// The hub's record holds the request's whole output; what reached us
	// on IOPub before the drop is a prefix of it. The IOPub idle will not
	// come (it was published while we were away), so do not wait for it.
	if len(rec.IO.Stdout) >= len(f.md.Stdout) {
		f.md.Stdout = rec.IO.Stdout
	}
	if len(rec.IO.Stderr) >= len(f.md.Stderr) {
		f.md.Stderr = rec.IO.Stderr
	}
	if rec.IO.ExecuteResult != nil && f.md.ExecuteResult == nil {
		if data, ok := rec.IO.ExecuteResult["data"].(map[string]any); ok {
			f.md.ExecuteResult = data
		}
	}
	f.idle = true
	f.md.OutputComplete = true
	f.mu.Unlock()
	c.log.Debug("recovered result from the hub", "msg_id", id)
	c.tun.recovered.Add(1)
	c.handleReply(f, reply)
	return nil
}

func (c *Client) forgetOrphan(id string) {
	c.tun.mu.Lock()
	delete(c.tun.orphans, id)
	c.tun.mu.Unlock()
}

// watchDrops notices a controller restarted on the same ports faster than
// the keepalive would (its probes queue in the socket and the new
// controller answers them): once the query connection dropped, it asks
// the hub every dropProbe until something arrives, then recovers what the
// drop may have lost, as after a tunnel drop.
func (c *Client) watchDrops(events <-chan transport.Event) {
	defer c.wg.Done()
	const dropProbe = 200 * time.Millisecond
	var tick <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	var droppedAt time.Duration
	dropped := false
	for {
		select {
		case <-c.done:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Kind != transport.EventDisconnected || dropped {
				continue
			}
			dropped, droppedAt = true, time.Since(c.born)
			c.log.Info("connection to the controller dropped; waiting for it", "controller", c.controllerAddr())
			if ticker == nil {
				ticker = time.NewTicker(dropProbe)
				tick = ticker.C
			} else {
				ticker.Reset(dropProbe)
			}
		case <-tick:
			if !dropped {
				continue
			}
			if time.Duration(c.heard.Load()) > droppedAt {
				dropped = false
				ticker.Stop()
				c.reconnected("the connection to the controller dropped and came back")
				continue
			}
			c.sendProbe()
		}
	}
}
