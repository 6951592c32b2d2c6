package ipp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// EngineInfo describes one registered engine. Host, PID, Language and the
// MPI fields are filled when the controller answers our engine_info_request
// (the Go controller does, for Go engines); a Python controller only knows
// ids and uuids.
type EngineInfo struct {
	ID        int
	UUID      string
	Host      string
	PID       int
	Language  string
	MPIRank   int
	MPISize   int
	MPIFlavor string
	// MPIWorld is the same for all ranks of one MPI world (the uuid of
	// its rank 0) and empty for engines that are not MPI ranks.
	MPIWorld string
}

// Engines lists the registered engines in id order, with host, pid and MPI
// placement when the controller knows them. It asks the hub, so an engine
// whose registration notification this client missed (the notification
// SUB misses what the hub publishes before its subscription is in place;
// its queue is unlimited, so nothing is dropped after that) is listed,
// and known to the client from then on.
func (c *Client) Engines(ctx context.Context) ([]EngineInfo, error) {
	msg, err := c.hubQuery(ctx, "engine_info_request", map[string]any{})
	var reply struct {
		Engines map[string]protocol.EngineInfo `json:"engines"`
	}
	var he *HubError
	switch {
	case errors.As(err, &he):
		// A Python hub answers unknown queries with hub_error (KeyError
		// "Bad Message Type"): ids and uuids are all it has, and
		// connection_request lists them.
		c.resync(ctx)
	case err != nil:
		return nil, err
	default:
		if err := msg.DecodeContent(&reply); err != nil {
			return nil, err
		}
		ids := make(map[string]string, len(reply.Engines))
		for k, info := range reply.Engines {
			if info.UUID != "" {
				ids[k] = info.UUID
			}
		}
		c.mergeEngines(ids)
	}

	c.mu.Lock()
	out := make([]EngineInfo, 0, len(c.engines))
	for id, u := range c.engines {
		out = append(out, EngineInfo{ID: id, UUID: u})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b EngineInfo) int { return a.ID - b.ID })
	for i := range out {
		info, ok := reply.Engines[strconv.Itoa(out[i].ID)]
		if !ok {
			continue
		}
		out[i].Host, out[i].PID, out[i].Language = info.Host, info.PID, info.Language
		out[i].MPIRank, out[i].MPISize, out[i].MPIFlavor = info.MPIRank, info.MPISize, info.MPIFlavor
		out[i].MPIWorld = info.MPIWorld
	}
	return out, nil
}

// EngineQueue is one engine's line of QueueStatus.
type EngineQueue struct {
	// Queue counts direct requests waiting or running on the engine.
	Queue int `json:"queue"`
	// Completed counts requests it finished.
	Completed int `json:"completed"`
	// Tasks counts load-balanced tasks assigned to it and not finished.
	Tasks int `json:"tasks"`
}

// QueueStatus is the hub's view of the work per engine.
type QueueStatus struct {
	// Engines maps engine ids to their counts. Without targets the hub
	// lists every engine it ever registered, dead ones included.
	Engines map[int]EngineQueue
	// Unassigned counts tasks the scheduler has not placed yet.
	Unassigned int
}

// QueueStatus asks the hub for queue counts (queue_request) of the given
// engines, or of all when none are given.
func (c *Client) QueueStatus(ctx context.Context, targets ...int) (*QueueStatus, error) {
	var t any // null: every engine
	if len(targets) > 0 {
		t = targets
	}
	msg, err := c.hubQuery(ctx, "queue_request", map[string]any{"targets": t, "verbose": false})
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := msg.DecodeContent(&raw); err != nil {
		return nil, err
	}
	qs := &QueueStatus{Engines: map[int]EngineQueue{}}
	for k, v := range raw {
		switch k {
		case "status":
		case "unassigned":
			if err := json.Unmarshal(v, &qs.Unassigned); err != nil {
				return nil, fmt.Errorf("ipp: queue_reply unassigned: %w", err)
			}
		default:
			id, err := strconv.Atoi(k)
			if err != nil {
				continue
			}
			var eq EngineQueue
			if err := json.Unmarshal(v, &eq); err != nil {
				return nil, fmt.Errorf("ipp: queue_reply engine %s: %w", k, err)
			}
			qs.Engines[id] = eq
		}
	}
	return qs, nil
}

// ResultStatus tells which of the given requests the hub has seen
// completed and which are still pending.
type ResultStatus struct {
	Pending   []string
	Completed []string
}

// ResultStatus asks the hub about msgIDs (result_request, status only).
func (c *Client) ResultStatus(ctx context.Context, msgIDs ...string) (*ResultStatus, error) {
	if msgIDs == nil {
		msgIDs = []string{}
	}
	msg, err := c.hubQuery(ctx, "result_request", map[string]any{"msg_ids": msgIDs, "status_only": true})
	if err != nil {
		return nil, err
	}
	var rs ResultStatus
	var raw struct {
		Pending   []string `json:"pending"`
		Completed []string `json:"completed"`
	}
	if err := msg.DecodeContent(&raw); err != nil {
		return nil, err
	}
	rs.Pending, rs.Completed = raw.Pending, raw.Completed
	return &rs, nil
}

// History returns the msg_ids of every request the hub recorded, oldest
// first.
func (c *Client) History(ctx context.Context) ([]string, error) {
	msg, err := c.hubQuery(ctx, "history_request", map[string]any{})
	if err != nil {
		return nil, err
	}
	var raw struct {
		History []string `json:"history"`
	}
	if err := msg.DecodeContent(&raw); err != nil {
		return nil, err
	}
	return raw.History, nil
}

// Purge drops the hub's records of the given completed requests and of
// everything that ran on the given engines.
func (c *Client) Purge(ctx context.Context, msgIDs []string, targets ...int) error {
	if msgIDs == nil {
		msgIDs = []string{}
	}
	if targets == nil {
		targets = []int{}
	}
	_, err := c.hubQuery(ctx, "purge_request", map[string]any{"msg_ids": msgIDs, "engine_ids": targets})
	return err
}

// PurgeAll drops every completed record from the hub.
func (c *Client) PurgeAll(ctx context.Context) error {
	_, err := c.hubQuery(ctx, "purge_request", map[string]any{"msg_ids": "all", "engine_ids": []int{}})
	return err
}

// Abort asks the target engines (all when none are given) to skip the
// given requests if they have not started; with no msgIDs, every request
// of this client still outstanding is named, as the Python client does.
func (c *Client) Abort(ctx context.Context, msgIDs []string, targets ...int) error {
	ids, err := c.resolveTargets(targets)
	if err != nil {
		return err
	}
	if len(msgIDs) == 0 {
		c.mu.Lock()
		for id := range c.futures {
			msgIDs = append(msgIDs, id)
		}
		c.mu.Unlock()
		slices.Sort(msgIDs)
	}
	if msgIDs == nil {
		msgIDs = []string{}
	}
	return c.controlAll(ctx, ids, "abort_request", func(int) any { return map[string]any{"msg_ids": msgIDs} })
}

// Clear resets the namespaces of the target engines (all when none are
// given).
func (c *Client) Clear(ctx context.Context, targets ...int) error {
	ids, err := c.resolveTargets(targets)
	if err != nil {
		return err
	}
	return c.controlAll(ctx, ids, "clear_request", func(int) any { return map[string]any{} })
}

// Shutdown stops the target engines (all when none are given) and waits
// for each to acknowledge; with hub it then stops the controller too and
// closes this client.
func (c *Client) Shutdown(ctx context.Context, hub bool, targets ...int) error {
	ids, err := c.resolveTargets(targets)
	if err != nil && !(hub && errors.Is(err, ErrNoEngines)) {
		return err
	}
	var errs []error
	if len(ids) > 0 {
		err := c.controlAll(ctx, ids, "shutdown_request", func(int) any { return map[string]any{"restart": false} })
		// An engine that unregisters before its reply reaches us has
		// still shut down.
		for _, e := range unjoin(err) {
			if !IsEngineError(e) {
				errs = append(errs, e)
			}
		}
	}
	if hub {
		if _, err := c.hubQuery(ctx, "shutdown_request", map[string]any{}); err != nil && !errors.Is(err, ErrHubShutdown) {
			errs = append(errs, err)
		} else {
			c.shutdown(ErrHubShutdown)
		}
	}
	return errors.Join(errs...)
}

// unjoin splits an errors.Join result.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
