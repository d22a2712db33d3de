package wire

import (
	"fmt"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Payload types both sides use, so that an answer never renumbers.
const (
	PayloadTypeOpus         = 111
	PayloadTypeVP8          = 96
	PayloadTypeH264         = 102
	PayloadTypeH264Baseline = 108
)

var videoFeedback = []webrtc.RTCPFeedback{
	{Type: webrtc.TypeRTCPFBNACK},
	{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
	{Type: webrtc.TypeRTCPFBGoogREMB},
	{Type: webrtc.TypeRTCPFBTransportCC},
}

func h264(profile string, pt webrtc.PayloadType) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile,
			RTCPFeedback: videoFeedback,
		},
		PayloadType: pt,
	}
}

// Codecs are the codecs of every Sotto peer connection, by kind. The SFU
// only reads RTP headers, so to it a codec is a name and a clock rate.
var Codecs = []struct {
	Kind  webrtc.RTPCodecType
	Codec webrtc.RTPCodecParameters
}{
	{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine:  "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		},
		PayloadType: PayloadTypeOpus,
	}},
	{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback,
		},
		PayloadType: PayloadTypeVP8,
	}},
	{webrtc.RTPCodecTypeVideo, h264("42e01f", PayloadTypeH264)},
	{webrtc.RTPCodecTypeVideo, h264("42001f", PayloadTypeH264Baseline)},
}

var bothKinds = []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo}

// HeaderExtensions are the RTP header extensions negotiated, by URI. The
// RFC 6464 audio level is not among them: it tells whoever forwards the
// packet who is speaking, so each side adds it only by choice.
var HeaderExtensions = []struct {
	URI   string
	Kinds []webrtc.RTPCodecType
}{
	{sdp.SDESMidURI, bothKinds},
	{sdp.ABSSendTimeURI, bothKinds},
	{sdp.TransportCCURI, bothKinds},
}

// RegisterCodecs registers Codecs and HeaderExtensions with me, and the
// audio-level extension when audioLevel is set.
func RegisterCodecs(me *webrtc.MediaEngine, audioLevel bool) error {
	for _, c := range Codecs {
		if err := me.RegisterCodec(c.Codec, c.Kind); err != nil {
			return fmt.Errorf("register codec %s: %w", c.Codec.MimeType, err)
		}
	}
	exts := HeaderExtensions
	if audioLevel {
		exts = append(exts[:len(exts):len(exts)], struct {
			URI   string
			Kinds []webrtc.RTPCodecType
		}{sdp.AudioLevelURI, []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio}})
	}
	for _, e := range exts {
		for _, k := range e.Kinds {
			if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.URI}, k); err != nil {
				return fmt.Errorf("register header extension %s: %w", e.URI, err)
			}
		}
	}
	return nil
}
