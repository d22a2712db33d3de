package signaling

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

// relayFloodAt is how many relays may be refused to one sender within
// floodWindow before it is ended with relay_flood.
const relayFloodAt = 16

// Why a relay does not fit a receiver's queue (metric label values).
const (
	refusedSenderBudget = "sender_budget"
	refusedShare        = "receiver_share"
	refusedQueue        = "receiver_queue"
)

func (c *session) relay(r *wire.Relay) {
	if len(r.Data) == 0 || !json.Valid(r.Data) {
		c.sendError(wire.CodeBadMessage, "relay needs data, a JSON value", wire.TypeRelay, r.ID)
		return
	}
	if !c.relayBudget.AllowN(time.Now(), len(r.Data)) {
		c.srv.metrics.relayRefused.WithLabelValues(refusedSenderBudget).Inc()
		c.relayRefused(r.ID, fmt.Sprintf("relay data over %v bytes per second (bursts of %d); relay dropped",
			c.srv.limits.RelayBytesPerSecond, c.srv.limits.RelayBurstBytes))
		return
	}
	code, msg, refused := c.srv.relay(c, r.To, r.Data)
	switch {
	case code == "":
		c.ack(r.ID)
	case refused:
		c.relayRefused(r.ID, msg)
	default:
		c.sendError(code, msg, wire.TypeRelay, r.ID)
	}
}

// relayRefused tells the sender its relay was dropped, or ends it once
// more than relayFloodAt were within floodWindow.
func (c *session) relayRefused(id, msg string) {
	if c.relayTally.add(time.Now()) > relayFloodAt {
		c.logger().Warn("signaling: relay flood")
		c.fatal(wire.CodeRelayFlood, fmt.Sprintf("more than %d relays refused within %v", relayFloodAt, floodWindow), wire.TypeRelay, wire.ClosePolicy)
		return
	}
	c.sendError(wire.CodeRateLimited, msg, wire.TypeRelay, id)
}

// relay passes data from sess to the identities in to (everyone else when
// empty). Every identity in to must be an announced member, or nobody gets
// it. A recipient without room in sess's share of its queue is skipped, so
// that one slow member cannot cut a sender off from the room; refused is
// true when that left nobody. The sender never receives its own relay.
func (s *Server) relay(sess *session, to []string, data json.RawMessage) (code, msg string, refused bool) {
	r, m := sess.room, sess.member
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.currentLocked(m) {
		return wire.CodeInternal, "not in the room", false
	}
	recipients, unknown := r.recipientsLocked(m, to)
	if len(unknown) > 0 {
		return wire.CodeUnknownParticipant, fmt.Sprintf("not in the room: %q; the relay was delivered to no one", unknown), false
	}
	frame, err := encodeRelay(m.info.Identity, m.info.SID, data)
	if err != nil {
		return wire.CodeInternal, "relay could not be encoded", false
	}
	share := s.limits.relayShare(len(r.members) - 1)
	var skipped []string
	delivered := 0
	for _, o := range recipients {
		if why := o.sess.relayFits(sess, len(frame), share); why != "" {
			s.metrics.relayRefused.WithLabelValues(why).Inc()
			skipped = append(skipped, truncate(o.info.Identity, 64))
			continue
		}
		o.sess.enqueueRelay(sess, frame)
		delivered++
	}
	switch {
	case len(skipped) == 0:
		return "", "", false
	case delivered == 0:
		return wire.CodeRateLimited, fmt.Sprintf("too many relays wait for %q; the relay was delivered to no one", skipped), true
	default:
		return wire.CodeRateLimited, fmt.Sprintf("too many relays wait for %q; the relay was delivered to the %d others", skipped, delivered), false
	}
}

// recipientsLocked returns the announced members to names (all but m
// when empty) and the names that are none.
func (r *room) recipientsLocked(m *member, to []string) (recipients []*member, unknown []string) {
	if len(to) == 0 {
		for _, o := range r.members {
			if o != m && o.announced {
				recipients = append(recipients, o)
			}
		}
		return recipients, nil
	}
	seen := make(map[string]bool, len(to))
	for _, id := range to {
		if seen[id] {
			continue
		}
		seen[id] = true
		o := r.members[id]
		switch {
		case o == nil || !o.announced:
			unknown = append(unknown, truncate(id, 64))
		case o != m:
			recipients = append(recipients, o)
		}
	}
	return recipients, unknown
}

// encodeRelay builds a relay frame around data without re-encoding it:
// the protocol promises the recipient the sender's bytes, which
// encoding/json would compact and HTML-escape.
func encodeRelay(from, fromSID string, data json.RawMessage) ([]byte, error) {
	head, err := json.Marshal(struct {
		Type    string `json:"type"`
		From    string `json:"from"`
		FromSID string `json:"from_sid"`
	}{wire.TypeRelay, from, fromSID})
	if err != nil {
		return nil, fmt.Errorf("signaling: encode relay: %w", err)
	}
	out := make([]byte, 0, len(head)+len(`,"data":`)+len(data))
	out = append(out, head[:len(head)-1]...) // without the closing brace
	out = append(out, `,"data":`...)
	out = append(out, data...)
	out = append(out, '}')
	return out, nil
}

// relayFits reports why a relay frame of n bytes from from would not fit
// c's queue, or "" if it fits. Relays are added only under the room's
// lock, which the caller holds, so a fit stays one until enqueueRelay.
func (c *session) relayFits(from *session, n int, share relayLoad) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return "" // dropped at enqueueRelay: a leaving receiver refuses nobody
	}
	lim := c.srv.limits
	if c.relayQueued.msgs >= lim.RelayQueueMessages || c.relayQueued.bytes+n > lim.RelayQueueBytes {
		return refusedQueue
	}
	if l := c.relayFrom[from]; l.msgs >= share.msgs || l.bytes+n > share.bytes {
		return refusedShare
	}
	return ""
}

// enqueueRelay queues a relay frame from from once relayFits said it
// fits. A relay never makes the receiver too slow: its sender is refused.
func (c *session) enqueueRelay(from *session, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	select {
	case c.relays <- outbound{data: frame, from: from}:
	default:
		return // not reached: the channel holds both bounds
	}
	c.relayQueued.msgs++
	c.relayQueued.bytes += len(frame)
	l := c.relayFrom[from]
	c.relayFrom[from] = relayLoad{l.msgs + 1, l.bytes + len(frame)}
}
