package engine

import (
	"sync"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// request is one shell request waiting for the executor.
type request struct {
	msg *wire.Message
	// parseErr is set when the request could be identified but not decoded;
	// the executor answers it with an error in its turn.
	parseErr error
}

// maxAbortedIDs bounds the remembered abort ids: a client may abort ids
// that never reach this engine, and they must not accumulate forever.
const maxAbortedIDs = 1 << 16

// queue holds shell requests in arrival order between the shell receiver
// and the executor, and the abort marks that control requests set on them.
type queue struct {
	mu      sync.Mutex
	items   []*request
	closed  bool
	wake    chan struct{}
	aborted map[string]struct{}
	order   []string // aborted ids, oldest first, for the bound
}

func newQueue() *queue {
	return &queue{wake: make(chan struct{}, 1), aborted: map[string]struct{}{}}
}

func (q *queue) push(r *request) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, r)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop waits for the next request; ok is false once the queue is closed.
func (q *queue) pop() (r *request, ok bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		if len(q.items) > 0 {
			r = q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			q.mu.Unlock()
			return r, true
		}
		q.mu.Unlock()
		<-q.wake
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.items = nil
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// abort marks ids as aborted, whether they are queued already or arrive
// later (ipykernel remembers them the same way). No ids means every
// request queued right now.
func (q *queue) abort(ids []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(ids) == 0 {
		for _, r := range q.items {
			ids = append(ids, r.msg.Header.MsgID)
		}
	}
	for _, id := range ids {
		if _, dup := q.aborted[id]; dup {
			continue
		}
		q.aborted[id] = struct{}{}
		q.order = append(q.order, id)
	}
	for len(q.order) > maxAbortedIDs {
		delete(q.aborted, q.order[0])
		q.order = q.order[1:]
	}
}

// takeAborted reports whether id was aborted, forgetting the mark: a
// msg_id is used once.
func (q *queue) takeAborted(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.aborted[id]; !ok {
		return false
	}
	delete(q.aborted, id)
	return true
}

// ids lists the msg_ids of the waiting requests.
func (q *queue) ids() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]string, 0, len(q.items))
	for _, r := range q.items {
		out = append(out, r.msg.Header.MsgID)
	}
	return out
}
