package hostilenode

import (
	"encoding/json"
	"slices"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Filter sees every message carried, once recorded, and returns what to
// send on in its place: none drops it, several multiply it. It runs on
// every connection at once and must not keep msg.
type Filter func(c Conn, toClient bool, msg []byte) [][]byte

// SetFilter replaces the filter; nil passes everything. A message to a
// client is rewritten first; injected messages go through neither.
func (n *Node) SetFilter(f Filter) {
	n.mu.Lock()
	n.filter = f
	n.mu.Unlock()
}

// AddFilter chains f after the filter already set (see Chain).
func (n *Node) AddFilter(f Filter) {
	n.mu.Lock()
	n.filter = Chain(n.filter, f)
	n.mu.Unlock()
}

// Chain makes one filter of several, in order, skipping nil ones.
func Chain(filters ...Filter) Filter {
	filters = slices.DeleteFunc(slices.Clone(filters), func(f Filter) bool { return f == nil })
	return func(c Conn, toClient bool, msg []byte) [][]byte {
		out := [][]byte{msg}
		for _, f := range filters {
			var next [][]byte
			for _, m := range out {
				next = append(next, f(c, toClient, m)...)
			}
			out = next
		}
		return out
	}
}

// JSONFilter makes a filter from fix over decoded messages: dropped unless
// keep, re-encoded only if changed. Non-objects go through.
func JSONFilter(fix func(c Conn, toClient bool, m map[string]any) (keep, changed bool)) Filter {
	return func(c Conn, toClient bool, msg []byte) [][]byte {
		var m map[string]any
		if json.Unmarshal(msg, &m) != nil {
			return [][]byte{msg}
		}
		keep, changed := fix(c, toClient, m)
		switch {
		case !keep:
			return nil
		case !changed:
			return [][]byte{msg}
		}
		out, err := json.Marshal(m)
		if err != nil {
			return [][]byte{msg}
		}
		return [][]byte{out}
	}
}

// viewing reports whether a message goes to one of viewers (all but exempt,
// if none).
func viewing(c Conn, toClient bool, exempt string, viewers []string) bool {
	if !toClient || c.Identity == exempt {
		return false
	}
	return len(viewers) == 0 || slices.Contains(viewers, c.Identity)
}

// HideFrom hides ghost from viewers (everyone else if none) in joined and
// the participant and track messages; not its relays (DropRelaysFrom) nor
// its media in the SDP.
func HideFrom(ghost string, viewers ...string) Filter {
	viewers = slices.Clone(viewers)
	hide := JSONFilter(func(_ Conn, _ bool, m map[string]any) (keep, changed bool) {
		switch m["type"] {
		case wire.TypeJoined:
			list, _ := m["participants"].([]any)
			kept := slices.DeleteFunc(slices.Clone(list), func(p any) bool {
				pm, _ := p.(map[string]any)
				return pm != nil && pm["identity"] == ghost
			})
			if len(kept) == len(list) {
				return true, false
			}
			m["participants"] = kept
			return true, true
		case wire.TypeParticipantJoin:
			pm, _ := m["participant"].(map[string]any)
			return pm == nil || pm["identity"] != ghost, false
		case wire.TypeTrackPublished:
			tm, _ := m["track"].(map[string]any)
			return tm == nil || tm["identity"] != ghost, false
		case wire.TypeParticipantLeft, wire.TypeTrackUnpublished, wire.TypeTrackMuted:
			return m["identity"] != ghost, false
		}
		return true, false
	})
	return func(c Conn, toClient bool, msg []byte) [][]byte {
		if !viewing(c, toClient, ghost, viewers) {
			return [][]byte{msg}
		}
		return hide(c, toClient, msg)
	}
}

// DropRelaysFrom drops sender's relays to viewers (everyone else if none).
func DropRelaysFrom(sender string, viewers ...string) Filter {
	viewers = slices.Clone(viewers)
	return func(c Conn, toClient bool, msg []byte) [][]byte {
		if !viewing(c, toClient, sender, viewers) {
			return [][]byte{msg}
		}
		var r struct {
			Type string `json:"type"`
			From string `json:"from"`
		}
		if json.Unmarshal(msg, &r) == nil && r.Type == wire.TypeRelay && r.From == sender {
			return nil
		}
		return [][]byte{msg}
	}
}
