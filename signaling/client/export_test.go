package client

import "github.com/sotto-rtc/sotto/media/e2ee"

// IdentityOf returns c's end-to-end encryption identity key pair, nil when
// E2EE is off. For tests only (this file is compiled into the test binary
// alone): TestE2EERelayMessagesAreOpaque looks for the private key in
// everything the server carried.
func IdentityOf(c *Client) *e2ee.Identity { return c.identity }

// SessionKeyOf is the HPKE key and session id the client announces.
func SessionKeyOf(c *Client) *e2ee.SessionKey { return c.sessionKey }
