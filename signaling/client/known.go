package client

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Known people (docs/E2EE.md, "Known people"): trust on first use,
// verification codes, and whom a safety number covers.

// KeyChange is a known person's new identity key, or someone new whose
// name looks like a known person's (Handlers.SecurityKeyChanged).
type KeyChange struct {
	Identity    string // the token's sub
	Previous    []byte // the Ed25519 key this client knew (for LooksLike, theirs)
	Current     []byte // the one announced now
	WasVerified bool   // the previous key had been marked verified
	// LooksLike: Identity is new but its name looks like this known one's.
	LooksLike string
}

// ErrNoKeyChange: the change is not the one waiting (none, or the key
// changed again and a new SecurityKeyChanged was raised).
var ErrNoKeyChange = errors.New("client: that security key change is not the one waiting")

// trustedKeyLocked checks an announced identity key against the store: new
// ones are remembered, a different one holds the participant out of key
// management and is reported once. Unparsable ones are the key session's.
func (c *Client) trustedKeyLocked(p wire.ParticipantInfo) bool {
	ann, err := e2ee.ParseAnnouncement(p.PublicKey)
	if err != nil || c.store == nil {
		return true
	}
	tr, old, like, err := e2ee.CheckKey(c.store, p.Identity, ann.Identity)
	if err != nil {
		// Fail closed: who cannot be remembered cannot be recognised later.
		c.log.Error("client: identity store: cannot remember a participant's key; holding them out of the call's keys", "identity", p.Identity, "err", err)
		return false
	}
	if tr == e2ee.TrustNew {
		if c.metNow == nil {
			c.metNow = make(map[string]bool)
		}
		c.metNow[p.Identity+"\x00"+string(ann.Identity)] = true
	}
	if tr != e2ee.TrustChanged && tr != e2ee.TrustLookalike {
		delete(c.changed, p.Identity)
		return true
	}
	if prev, ok := c.changed[p.Identity]; ok && bytes.Equal(prev.Current, ann.Identity) {
		return false
	}
	kc := KeyChange{Identity: p.Identity, Previous: old.Key, Current: bytes.Clone(ann.Identity), WasVerified: old.Verified, LooksLike: like}
	if c.changed == nil {
		c.changed = make(map[string]KeyChange)
	}
	c.changed[p.Identity] = kc.clone()
	if like != "" {
		c.log.Warn("client: a new participant's name looks like a known person's; holding them out of the call's keys until the application accepts",
			"identity", p.Identity, "looks_like", like)
	} else {
		c.log.Warn("client: a known person's security key changed; holding them out of the call's keys until the application accepts",
			"identity", p.Identity)
	}
	if f := c.opts.Handlers.SecurityKeyChanged; f != nil {
		c.emit(func() { f(kc) })
	}
	return false
}

// AcceptKeyChange takes kc.Current, exactly as reported, as kc.Identity's
// key (unverified), and keys flow again; ErrNoKeyChange if it changed since.
func (c *Client) AcceptKeyChange(kc KeyChange) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	waiting, ok := c.changed[kc.Identity]
	if !ok || !bytes.Equal(waiting.Current, kc.Current) {
		return fmt.Errorf("%w: %q", ErrNoKeyChange, kc.Identity)
	}
	if err := c.store.Remember(kc.Identity, e2ee.KnownKey{Key: waiting.Current, FirstSeen: time.Now().UTC()}); err != nil {
		return fmt.Errorf("client: identity store: %w", err)
	}
	delete(c.changed, kc.Identity)
	if c.sess != nil {
		c.updateKeyMembersLocked(c.sess)
	}
	return nil
}

// PendingKeyChanges lists changed keys not accepted yet.
func (c *Client) PendingKeyChanges() []KeyChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]KeyChange, 0, len(c.changed))
	for _, kc := range c.changed {
		out = append(out, kc.clone())
	}
	return out
}

func (kc KeyChange) clone() KeyChange {
	kc.Previous, kc.Current = bytes.Clone(kc.Previous), bytes.Clone(kc.Current)
	return kc
}

// VerificationCode is the pairwise code of this client and identity over
// the key this call uses for them; it fails for someone not covered.
func (c *Client) VerificationCode(identity string) (string, error) {
	key, err := c.coveredKey(identity)
	if err != nil {
		return "", err
	}
	return e2ee.VerificationCode(e2ee.Member{Identity: c.selfIdentity(), PublicKey: c.identity.PublicKey()}, e2ee.Member{Identity: identity, PublicKey: key}), nil
}

// coveredKey is the identity key the call uses for identity.
func (c *Client) coveredKey(identity string) ([]byte, error) {
	if c.keys == nil || c.identity == nil {
		return nil, errors.New("client: end-to-end encryption is off")
	}
	for _, m := range c.keys.Members() {
		if m.Identity == identity {
			return m.PublicKey, nil
		}
	}
	return nil, fmt.Errorf("client: %q is not covered by this call's keys", identity)
}

// MarkVerified records (or withdraws) that identity's code over key
// matched; it holds only while key is the one known for them.
func (c *Client) MarkVerified(identity string, key []byte, verified bool) error {
	if c.store == nil {
		return errors.New("client: end-to-end encryption is off")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.store.Known(identity)
	if !ok {
		return fmt.Errorf("client: %q has not been met", identity)
	}
	if !bytes.Equal(k.Key, key) {
		return fmt.Errorf("client: the key known for %q is not the one given: compare the code again", identity)
	}
	k.Verified = verified
	return c.store.Remember(identity, k)
}

// Covered is one person a safety number covers.
type Covered struct {
	Identity string
	Key      []byte // Ed25519 identity key
	Verified bool   // this client marked the key verified
	Self     bool
}

// SafetyNumberCovers lists exactly whom SafetyNumber covers, this client
// included, sorted by identity; someone held out is not in it.
func (c *Client) SafetyNumberCovers() []Covered {
	if c.keys == nil {
		return nil
	}
	self := c.selfIdentity()
	var out []Covered
	for _, m := range c.keys.Members() {
		cv := Covered{Identity: m.Identity, Key: m.PublicKey, Self: m.Identity == self}
		if k, ok := c.store.Known(m.Identity); ok && bytes.Equal(k.Key, m.PublicKey) {
			cv.Verified = k.Verified
		}
		out = append(out, cv)
	}
	return out
}

// selfIdentity is this client's identity as the server named it.
func (c *Client) selfIdentity() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.self.Identity
}
