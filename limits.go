package ipp

import (
	"errors"
	"fmt"
)

// ErrMessageTooLarge is wrapped by the error of a request larger than the
// controller accepts (its --max-message-size, which it announces in
// connection_reply). The request is refused before it is sent: sent, its
// largest frame would make the controller's transport drop the connection,
// and the client would only see a reply that never comes.
var ErrMessageTooLarge = errors.New("ipp: message too large for the controller")

// checkSize refuses frames that add up to more than the controller's
// announced maximum; a controller that announces none (Python's hub) is
// not checked.
func (c *Client) checkSize(msgType string, frames [][]byte) error {
	if c.maxMessage <= 0 {
		return nil
	}
	n := int64(0)
	for _, f := range frames {
		n += int64(len(f))
	}
	if n > c.maxMessage {
		return fmt.Errorf("%w: %s of %d bytes, the controller accepts at most %d bytes (its --max-message-size)",
			ErrMessageTooLarge, msgType, n, c.maxMessage)
	}
	return nil
}
