package sfu

import (
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// sections returns the m-sections of an SDP: mid, direction and the
// track id of its msid ("" when none).
func sections(t *testing.T, raw string) (mids, dirs, tracks []string) {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		t.Fatal(err)
	}
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		dir := ""
		for _, a := range []string{"sendonly", "recvonly", "sendrecv", "inactive"} {
			if _, ok := m.Attribute(a); ok {
				dir = a
			}
		}
		track := ""
		if v, ok := m.Attribute("msid"); ok {
			if f := strings.Fields(v); len(f) == 2 {
				track = f[1]
			}
		}
		mids, dirs, tracks = append(mids, mid), append(dirs, dir), append(tracks, track)
	}
	return mids, dirs, tracks
}

// A subscriber that allows reuse sees one video m-section however many
// tracks come and go in turn: each ended track's section goes inactive,
// and the next track takes it (same mid, sendonly, the new track's msid),
// with the SFU sending media on it (a pion client cannot receive there
// again, pion/webrtc#2226; browsers do).
func TestEndedSectionsAreReused(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newTestSFU(t, Config{Registerer: reg})
	a := join(t, s, ParticipantConfig{SID: "PA_a", CanPublish: true})
	b := join(t, s, ParticipantConfig{SID: "PA_b", CanSubscribe: true, AutoSubscribe: true, ReuseSections: true})

	const rounds = 5
	firstMid := ""
	for i := range rounds {
		lt := a.publish("video", "cam")
		ti := a.waitPublished(t)
		offer := b.waitOffer(t, func(sdp string) bool { return strings.Contains(sdp, ti.SID) })
		mids, dirs, tracks := sections(t, offer)
		if len(mids) != 1 || dirs[0] != "sendonly" || tracks[0] != ti.SID {
			t.Fatalf("round %d: offer sections mids %v dirs %v tracks %v, want one sendonly for %s", i, mids, dirs, tracks, ti.SID)
		}
		if i == 0 {
			firstMid = mids[0]
		} else if mids[0] != firstMid {
			t.Fatalf("round %d: track on mid %s, want the reused %s", i, mids[0], firstMid)
		}
		// Media flows to the subscriber on this round's section.
		out := func() float64 { return counterValue(t, reg, "sotto_rtp_packets_out_total", nil) }
		before := out()
		waitFor(t, "packets forwarded on the section", func() bool { return out() >= before+20 })
		if i == 0 {
			b.waitTrack(t).expectContiguous(t, 'v', 20)
		}

		if err := a.p.Unpublish(ti.SID); err != nil {
			t.Fatal(err)
		}
		a.waitUnpublished(t)
		close(lt.stopWriting)
		if err := a.pub.RemoveTrack(lt.sender); err != nil {
			t.Fatal(err)
		}
		if err := a.negotiatePublisher(); err != nil {
			t.Fatal(err)
		}
		ended := b.waitOffer(t, func(sdp string) bool { return !strings.Contains(sdp, ti.SID) })
		mids, dirs, _ = sections(t, ended)
		if len(mids) != 1 || dirs[0] != "inactive" {
			t.Fatalf("round %d: after the end, sections %v %v, want the one inactive", i, mids, dirs)
		}
	}
}
