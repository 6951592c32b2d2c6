// Package wire implements IPython Parallel's message format: Jupyter
// messaging 5.3 frames over ZeroMQ, signed with HMAC-SHA256.
//
// A message on the wire is
//
//	[ident..., "<IDS|MSG>", signature, header, parent_header, metadata, content, buffer...]
//
// Split finds the delimiter; Session.Parse verifies the signature over the
// four JSON frames exactly as received, rejects replays, and decodes the
// header and parent header (metadata and content stay raw until asked for,
// so relays can forward them byte for byte). Session.Build signs and frames
// a new message. Connection files (ipcontroller-client.json and
// ipcontroller-engine.json) and the profile layout under $IPYTHONDIR are in
// files.go; dates in the Python format are in date.go.
package wire
