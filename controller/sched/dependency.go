package sched

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Dependency is a set of task msg_ids with the rule deciding when they count
// as satisfied, mirroring ipyparallel.Dependency. A Dependency with no IDs
// imposes nothing.
type Dependency struct {
	// IDs are the msg_ids depended upon.
	IDs []string
	// All requires every id to have finished acceptably; otherwise one is
	// enough.
	All bool
	// Success accepts tasks that finished with status "ok".
	Success bool
	// Failure accepts tasks that finished with any other status, including
	// failures the scheduler itself generated.
	Failure bool
}

// NewDependency returns a dependency on ids with Python's default flags:
// all of them must succeed.
func NewDependency(ids ...string) Dependency {
	return Dependency{IDs: ids, All: true, Success: true}
}

// errNoOutcome is the Python ValueError "Must depend on at least one of
// successes or failures!".
var errNoOutcome = errors.New("sched: dependency must accept successes, failures or both")

// ParseDependency decodes the metadata "after"/"follow" value a client sends:
// null, a msg_id string, a list of msg_ids, or the dict form
// {"dependencies": [...], "all": bool, "success": bool, "failure": bool}
// whose missing flags default to all=true, success=true, failure=false.
// Duplicate ids are dropped, since Python holds them in a set.
func ParseDependency(raw json.RawMessage) (Dependency, error) {
	d := NewDependency()
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || b[0] != '{' {
		ids, err := parseIDs(b)
		if err != nil {
			return Dependency{}, err
		}
		d.IDs = ids
		return d, nil
	}
	var obj struct {
		Dependencies json.RawMessage `json:"dependencies"`
		All          *bool           `json:"all"`
		Success      *bool           `json:"success"`
		Failure      *bool           `json:"failure"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return Dependency{}, fmt.Errorf("sched: dependency: %w", err)
	}
	ids, err := parseIDs(obj.Dependencies)
	if err != nil {
		return Dependency{}, err
	}
	d.IDs = ids
	if obj.All != nil {
		d.All = *obj.All
	}
	if obj.Success != nil {
		d.Success = *obj.Success
	}
	if obj.Failure != nil {
		d.Failure = *obj.Failure
	}
	if !d.Success && !d.Failure {
		return Dependency{}, errNoOutcome
	}
	return d, nil
}

// parseIDs accepts the id-only shapes: absent, null, a string, a list.
func parseIDs(raw json.RawMessage) ([]string, error) {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var list []string
	switch b[0] {
	case '"':
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return nil, fmt.Errorf("sched: dependency: %w", err)
		}
		if one != "" {
			list = []string{one}
		}
	case '[':
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("sched: dependency: %w", err)
		}
	default:
		return nil, fmt.Errorf("sched: dependency: want null, a msg_id, a list or a dict, got %.40s", b)
	}
	return dedupe(list), nil
}

func dedupe(ids []string) []string {
	if len(ids) < 2 {
		return ids
	}
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// outcome is how a finished task ended and where. engine is "" for failures
// the scheduler generated without running the task anywhere.
type outcome struct {
	engine string
	ok     bool
}

func (d Dependency) accepts(o outcome) bool {
	return (o.ok && d.Success) || (!o.ok && d.Failure)
}

// status evaluates d against the finished tasks anywhere (ipyparallel's
// Dependency rules: all/any, success/failure, as in TestDependencyStatus).
// met and impossible are both permanent once true, because outcomes never
// change.
func (d Dependency) status(done map[string]outcome) (met, impossible bool) {
	if len(d.IDs) == 0 {
		return true, false
	}
	accepted, rejected := 0, 0
	for _, id := range d.IDs {
		if o, ok := done[id]; ok {
			if d.accepts(o) {
				accepted++
			} else {
				rejected++
			}
		}
	}
	if d.All {
		return accepted == len(d.IDs), rejected > 0
	}
	return accepted > 0, rejected == len(d.IDs)
}

// metOn reports whether d, read as a location dependency, is satisfied on
// the engine uuid: the ids finished acceptably there.
func (d Dependency) metOn(done map[string]outcome, uuid string) bool {
	if len(d.IDs) == 0 {
		return true
	}
	hits := 0
	for _, id := range d.IDs {
		if o, ok := done[id]; ok && d.accepts(o) && o.engine == uuid {
			hits++
		}
	}
	if d.All {
		return hits == len(d.IDs)
	}
	return hits > 0
}

// possibleOn reports whether d could still become metOn(uuid) as the
// unfinished ids finish.
func (d Dependency) possibleOn(done map[string]outcome, uuid string) bool {
	if len(d.IDs) == 0 {
		return true
	}
	for _, id := range d.IDs {
		o, finished := done[id]
		here := finished && d.accepts(o) && o.engine == uuid
		if d.All && finished && !here {
			return false
		}
		if !d.All && (!finished || here) {
			return true
		}
	}
	return d.All
}

// possibleOnNewEngine reports whether an engine that has not registered yet
// could satisfy d: only while no finished id has pinned the location.
func (d Dependency) possibleOnNewEngine(done map[string]outcome) bool {
	for _, id := range d.IDs {
		_, finished := done[id]
		if d.All && finished {
			return false
		}
		if !d.All && !finished {
			return true
		}
	}
	return d.All || len(d.IDs) == 0
}
