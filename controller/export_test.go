package controller

// SetRestoredTasks stands in for the task database's loading in tests:
// f returns the records a restore takes over.
func SetRestoredTasks(cfg *Config, f func() []*TaskRecord) { cfg.restoredTasks = f }

// IncompleteRecords snapshots the requests without a result, as a task
// database would have stored them: a test's stand-in for the db.
func IncompleteRecords(c *Controller) []*TaskRecord {
	rs := c.records
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []*TaskRecord
	for _, id := range rs.order {
		r := rs.byID[id]
		if r == nil || r.done || r.bare {
			continue
		}
		out = append(out, &TaskRecord{MsgID: r.MsgID, Header: clone(r.Header), Metadata: clone(r.Metadata),
			Submitted: r.Submitted, ClientUUID: r.ClientUUID, EngineUUID: r.EngineUUID, Queue: r.Queue})
	}
	return out
}

// ResultContent is the result content the hub recorded for msgID.
func ResultContent(c *Controller, msgID string) string {
	c.records.mu.Lock()
	defer c.records.mu.Unlock()
	if r := c.records.byID[msgID]; r != nil {
		return string(r.ResultContent)
	}
	return ""
}
