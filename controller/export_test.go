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
		if r == nil || r.completed || r.header == nil {
			continue
		}
		out = append(out, &TaskRecord{MsgID: r.msgID, Header: clone(r.header), Metadata: clone(r.metadata),
			Submitted: r.submitted, ClientUUID: r.clientUUID, EngineUUID: r.engineUUID, Queue: r.queue})
	}
	return out
}

// ResultContent is the result content the hub recorded for msgID.
func ResultContent(c *Controller, msgID string) string {
	c.records.mu.Lock()
	defer c.records.mu.Unlock()
	if r := c.records.byID[msgID]; r != nil {
		return string(r.resultContent)
	}
	return ""
}
