package hostilenode

import (
	"encoding/json"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

// RelaysOfType matches, for Recorded, relays whose data has this "type".
func RelaysOfType(dataType string) func(Frame) bool {
	return func(f Frame) bool { return RelayType(f.Data) == dataType }
}

// RelayData returns a relay's data if it is a JSON object, else nil.
func RelayData(msg []byte) map[string]any {
	var r struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(msg, &r) != nil || r.Type != wire.TypeRelay {
		return nil
	}
	var data map[string]any
	if json.Unmarshal(r.Data, &data) != nil {
		return nil
	}
	return data
}

// RelayType returns the "type" of a relay's data (e.g. "key"), or "".
func RelayType(msg []byte) string {
	t, _ := RelayData(msg)["type"].(string)
	return t
}

// RelayFrom readdresses a relay as one the node delivers from sender, data
// byte for byte; nil if msg is not a relay.
func RelayFrom(msg []byte, from, fromSID string) []byte {
	return readdress(msg, wire.Relay{From: from, FromSID: fromSID})
}

// RelayTo readdresses a relay as one a client sends to these identities
// (everyone if none), without an id so no ack comes back; nil if not a relay.
func RelayTo(msg []byte, to ...string) []byte {
	return readdress(msg, wire.Relay{To: to})
}

func readdress(msg []byte, r wire.Relay) []byte {
	var in wire.Relay
	if json.Unmarshal(msg, &in) != nil || in.Type != wire.TypeRelay {
		return nil
	}
	r.Type, r.Data = wire.TypeRelay, in.Data
	out, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	return out
}

// JSON makes a rewrite from fix, as JSONFilter makes a filter: what fix
// leaves alone goes through byte for byte.
func JSON(fix func(m map[string]any) bool) func([]byte) []byte {
	f := JSONFilter(func(_ Conn, _ bool, m map[string]any) (keep, changed bool) { return true, fix(m) })
	return func(b []byte) []byte { return f(Conn{}, true, b)[0] }
}

// Participants returns those a joined or participant_joined describes.
func Participants(m map[string]any) []map[string]any {
	var ps []map[string]any
	switch m["type"] {
	case wire.TypeJoined:
		list, _ := m["participants"].([]any)
		for _, p := range list {
			if pm, ok := p.(map[string]any); ok {
				ps = append(ps, pm)
			}
		}
	case wire.TypeParticipantJoin:
		if pm, ok := m["participant"].(map[string]any); ok {
			ps = append(ps, pm)
		}
	}
	return ps
}

// Tracks returns the tracks a node's message describes.
func Tracks(m map[string]any) []map[string]any {
	var ts []map[string]any
	for _, p := range Participants(m) {
		list, _ := p["tracks"].([]any)
		for _, t := range list {
			if tm, ok := t.(map[string]any); ok {
				ts = append(ts, tm)
			}
		}
	}
	if m["type"] == wire.TypeTrackPublished {
		if tm, ok := m["track"].(map[string]any); ok {
			ts = append(ts, tm)
		}
	}
	return ts
}
