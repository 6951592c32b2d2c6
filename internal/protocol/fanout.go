package protocol

// A mux fan-out is our client's way to send one direct request to several
// engines as one message: a DirectView call whose content and buffers are
// the same for every target (Push, Execute, Apply, Pull) would otherwise
// upload them once per engine. It is an ordinary mux request with no
// engine routing frame (the controller's mux ROUTER sees [client,
// <IDS|MSG>, ...]) and the target engines' uuids under MetaFanout in its
// signed metadata. The controller verifies it once and forwards one copy per
// target on the mux path, exactly as if the client had sent it there
// itself: msg_id "<msg_id>_<engine uuid>" (the broadcast scheduler's
// naming), metadata without MetaFanout, header re-signed, the received
// buffers sent in place to every engine. Each copy is booked and answered
// as a single-target request, and the engines' replies travel back one
// by one. Only a controller that announces ConnectionFanout in its
// connection_reply gets such a request; ipyparallel's controller does not,
// and its clients never send one.

// MetaFanout is the request-metadata key of a mux fan-out: a JSON array of
// engine uuids, each at most once.
const MetaFanout = "ipp_fanout_targets"

// ConnectionFanout is the connection_reply key (true) by which our
// controller tells our client that its mux accepts fan-out requests.
// Python clients ignore it.
const ConnectionFanout = "mux_fanout"

// MaxFanoutTargets bounds the targets of one fan-out; the client splits
// larger views into several requests.
const MaxFanoutTargets = 4096
