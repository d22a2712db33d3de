package client

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sotto-rtc/sotto/media/e2ee"
)

// Admission by members and roster checks (docs/E2EE.md, "Admission and
// rosters").

// Newcomer is a participant waiting to be admitted
// (Handlers.ParticipantWaiting, E2EEOptions.Admission).
type Newcomer struct {
	Identity    string // the token's sub
	IdentityKey []byte // the Ed25519 identity key it announced
	// Known: the store knew this key before this client started.
	Known    bool
	Verified bool // the user marked the key verified (Client.MarkVerified)
}

// AdmissionDecision is what an AdmissionPolicy decides.
type AdmissionDecision int

const (
	// Ask leaves it waiting for Client.Admit, Client.Refuse or another member.
	Ask AdmissionDecision = iota
	Admit
	// Refuse tells everyone; another member may still admit it.
	Refuse
)

// AdmissionPolicy decides about a waiting participant, on the event
// goroutine, once this client is a member itself.
type AdmissionPolicy func(Newcomer) AdmissionDecision

// AdmitAll admits everyone: for bots and load tests, never for people.
var AdmitAll AdmissionPolicy = func(Newcomer) AdmissionDecision { return Admit }

// AdmitKnown admits a newcomer whose key the user verified and, when
// identities are given, who is one of them; others wait.
func AdmitKnown(identities ...string) AdmissionPolicy {
	ids := slices.Clone(identities)
	return func(n Newcomer) AdmissionDecision {
		if n.Verified && (len(ids) == 0 || slices.Contains(ids, n.Identity)) {
			return Admit
		}
		return Ask
	}
}

// ErrRosterMismatch is wrapped by every RosterMismatchError.
var ErrRosterMismatch = errors.New("client: the server is showing different people to different participants")

// RosterMismatchError is the roster alert: members' signed views of the
// call have not matched this client's for a while; no new media key is
// sent until they do.
type RosterMismatchError struct {
	Mismatches []e2ee.RosterMismatch
}

func (e *RosterMismatchError) Error() string {
	var parts []string
	names := func(es []e2ee.RosterEntry) string {
		var ns []string
		for _, x := range es {
			ns = append(ns, x.Name)
		}
		return strings.Join(ns, ", ")
	}
	for _, m := range e.Mismatches {
		switch {
		case m.Missing:
			parts = append(parts, fmt.Sprintf("%s sent no view", m.Member))
		default:
			var p []string
			if len(m.OnlyTheirs) > 0 {
				p = append(p, "also lists "+names(m.OnlyTheirs))
			}
			if len(m.OnlyMine) > 0 {
				p = append(p, "does not list "+names(m.OnlyMine))
			}
			parts = append(parts, m.Member+"'s view "+strings.Join(p, " and "))
		}
	}
	return ErrRosterMismatch.Error() + ": " + strings.Join(parts, "; ")
}

func (e *RosterMismatchError) Unwrap() error { return ErrRosterMismatch }

// AdmissionHandlers are the admission and roster events of Handlers.
type AdmissionHandlers struct {
	// ParticipantWaiting: show with Admit and Refuse, never as a member.
	ParticipantWaiting func(Newcomer)
	// ParticipantAdmitted: by is "" for one present when this client joined.
	ParticipantAdmitted func(identity, by string)
	ParticipantRefused  func(identity, by string)
	// Admitted: this client was admitted (by "": nobody could admit it).
	Admitted func(by string)
	// AdmissionRefused: this client stays waiting for another member.
	AdmissionRefused func(by string)
	// RosterMismatch is the roster alert: show it, blocking.
	RosterMismatch func(*RosterMismatchError)
	RosterAgreed   func()
}

// onMembership turns key management's events into handler calls and
// applies the admission policy. It may run under c.mu: it only queues.
func (c *Client) onMembership(ev e2ee.MembershipEvent) {
	h := c.opts.Handlers.Admission
	switch ev.Kind {
	case e2ee.EventWaiting:
		c.emit(func() {
			n := Newcomer{Identity: ev.Identity, IdentityKey: ev.IdentityKey}
			c.mu.Lock()
			metNow := c.metNow[ev.Identity+"\x00"+string(ev.IdentityKey)]
			c.mu.Unlock()
			if c.store != nil {
				if k, ok := c.store.Known(ev.Identity); ok && bytes.Equal(k.Key, ev.IdentityKey) {
					// The store remembers everyone on first sight.
					n.Known, n.Verified = !metNow || k.Verified, k.Verified
				}
			}
			if h.ParticipantWaiting != nil {
				h.ParticipantWaiting(n)
			}
			c.mu.Lock()
			_, held := c.changed[n.Identity]
			c.mu.Unlock()
			if !held {
				// A key change or look-alike waits for the user.
				c.applyPolicy(n)
			}
		})
	case e2ee.EventAdmitted:
		if f := h.ParticipantAdmitted; f != nil {
			c.emit(func() { f(ev.Identity, ev.By) })
		}
	case e2ee.EventRefused:
		if f := h.ParticipantRefused; f != nil {
			c.emit(func() { f(ev.Identity, ev.By) })
		}
	case e2ee.EventSelfAdmitted:
		if f := h.Admitted; f != nil {
			c.emit(func() { f(ev.By) })
		}
	case e2ee.EventSelfRefused:
		if f := h.AdmissionRefused; f != nil {
			c.emit(func() { f(ev.By) })
		}
	case e2ee.EventRosterMismatch:
		err := &RosterMismatchError{Mismatches: ev.Mismatches}
		c.log.Error("client: " + err.Error() + "; sending no new media key until the views agree")
		if f := h.RosterMismatch; f != nil {
			c.emit(func() { f(err) })
		}
	case e2ee.EventRosterAgreed:
		c.log.Info("client: every member's view of the call agrees again")
		if f := h.RosterAgreed; f != nil {
			c.emit(f)
		}
	}
}

// applyPolicy asks E2EEOptions.Admission about n, on the event goroutine.
func (c *Client) applyPolicy(n Newcomer) {
	p := c.opts.E2EE.Admission
	if p == nil {
		return
	}
	var err error
	switch p(n) {
	case Admit:
		err = c.Admit(n.Identity)
	case Refuse:
		err = c.Refuse(n.Identity)
	}
	if err != nil && !errors.Is(err, e2ee.ErrNotWaiting) && !errors.Is(err, e2ee.ErrNotAdmitted) {
		c.log.Warn("client: admission policy", "identity", n.Identity, "err", err)
	}
}

func (c *Client) keySession() (*e2ee.Session, error) {
	c.mu.Lock()
	k := c.keys
	c.mu.Unlock()
	if k == nil {
		return nil, errors.New("client: end-to-end encryption is off or not started")
	}
	return k, nil
}

// Admit gives a waiting participant this client's media keys and tells the
// members, signed. It fails with e2ee.ErrNotAdmitted while this client
// waits itself, e2ee.ErrNotWaiting for someone not waiting.
func (c *Client) Admit(identity string) error {
	k, err := c.keySession()
	if err != nil {
		return err
	}
	if err := k.Admit(identity); err != nil {
		return fmt.Errorf("client: admit %q: %w", identity, err)
	}
	return nil
}

// Refuse tells every member; another may still admit the participant.
func (c *Client) Refuse(identity string) error {
	k, err := c.keySession()
	if err != nil {
		return err
	}
	if err := k.Refuse(identity); err != nil {
		return fmt.Errorf("client: refuse %q: %w", identity, err)
	}
	return nil
}

// Admissions lists participants as waiting, refused or member; nil with
// E2EE off.
func (c *Client) Admissions() []e2ee.ParticipantStatus {
	k, err := c.keySession()
	if err != nil {
		return nil
	}
	return k.Participants()
}

// RosterStatus says whether this client is admitted and the views agree.
func (c *Client) RosterStatus() e2ee.RosterStatus {
	k, err := c.keySession()
	if err != nil {
		return e2ee.RosterStatus{}
	}
	return k.RosterStatus()
}
