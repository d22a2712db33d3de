package client

import (
	"fmt"
	"log/slog"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/sotto-rtc/sotto/internal/pionlog"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// newAPI builds the pion stack every peer connection of a client is made
// from: the codecs and header extensions of package wire, with the audio
// level, and pion's default interceptors (NACK generator and responder,
// RTCP reports, TWCC).
func newAPI(se *webrtc.SettingEngine, log *slog.Logger) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := wire.RegisterCodecs(me, true); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, fmt.Errorf("client: interceptors: %w", err)
	}

	var s webrtc.SettingEngine
	if se != nil {
		s = *se
	}
	if s.LoggerFactory == nil {
		s.LoggerFactory = pionlog.New(log, pionlog.Options{})
	}
	return webrtc.NewAPI(
		webrtc.WithSettingEngine(s),
		webrtc.WithMediaEngine(me),
		webrtc.WithInterceptorRegistry(reg),
	), nil
}
