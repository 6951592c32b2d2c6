package controller

import "fmt"

// Ports names every socket the controller reads, for deliver. The names
// are the connection-file keys, with _in for the client-facing side and
// _out for the engine-facing side of a relay, as ipyparallel names them;
// registration is the engine file's registration/query ROUTER and
// client_registration the client file's (one socket unless ClientIP
// splits the sides).
var Ports = []string{
	"registration", "hb_pong",
	"mux_in", "mux_out", "control_in", "control_out",
	"task_in", "task_out",
	"broadcast_in", "broadcast_leaf_0", "broadcast_leaf_1",
	"iopub_in",
	// Last, so that fuzz inputs keep choosing the ports they chose
	// before it existed.
	"client_registration",
}

// deliver hands frames to the handler of port exactly as its serving loop
// would after reading them from the socket. Tests and fuzz targets use it
// to reach every handler without a socket in between; the controller must
// have been started. It reports an unknown port name.
func (c *Controller) deliver(port string, frames [][]byte) error {
	switch port {
	case "registration":
		c.hub.handleRegistration(port, c.reg, frames)
	case "client_registration":
		// The engine file's ROUTER when the sides are not split.
		c.hub.handleRegistration(port, c.query, frames)
	case "hb_pong":
		c.hub.handlePong(frames)
	case "mux_in":
		c.mux.toEngine(frames)
	case "mux_out":
		c.mux.toClient(frames)
	case "control_in":
		c.control.toEngine(frames)
	case "control_out":
		c.control.toClient(frames)
	case "task_in":
		c.tasks.submit(frames)
	case "task_out":
		c.tasks.result(frames)
	case "broadcast_in":
		c.bcast.submit(frames)
	case "broadcast_leaf_0":
		c.bcast.reply(frames)
	case "broadcast_leaf_1":
		c.bcast.reply(frames)
	case "iopub_in":
		c.hub.handleIOPub(frames)
	default:
		return fmt.Errorf("controller: no port %q", port)
	}
	return nil
}
