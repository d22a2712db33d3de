package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Defaults of Config fields left zero.
const (
	defaultListenIP                = "0.0.0.0"
	defaultPacketCacheSize         = 512
	defaultKeyframeRequestInterval = 500 * time.Millisecond
	defaultICEDisconnectedTimeout  = 5 * time.Second
	defaultICEFailedTimeout        = 10 * time.Second
	iceKeepaliveInterval           = 2 * time.Second
	tcpReadBufferSize              = 64
	// tcpWriteBufferSize: seconds of video, so only a stalled subscriber fills it.
	tcpWriteBufferSize = 1 << 20
	// bindAttempts bounds the tries at a port free for both UDP and TCP.
	bindAttempts = 8
)

// Target names of a participant's two peer connections, as in the protocol.
const (
	targetPublisher  = "publisher"
	targetSubscriber = "subscriber"
)

// SFU is a selective forwarding unit; all its media is on one port.
type SFU struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	// se and the stacks build participants' connections (newPeerConnection).
	se       webrtc.SettingEngine
	pubStack connStack
	subStack connStack

	udpMux ice.UDPMux
	cands  *candidatePolicy
	// batch is the UDP mux's sockets, for batched writes; nil when off.
	batch  *batchGroup
	tcpMux ice.TCPMux // nil when DisableTCP
	port   int

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool

	closeOnce sync.Once
}

// Counts is a snapshot of what the SFU holds, for leak tests.
type Counts struct {
	Rooms         int // rooms with at least one participant
	Participants  int // participants joined and not closed
	Tracks        int // published tracks, announced or about to be
	Subscriptions int // (participant, track) forwarding pairs
}

// New binds the media port and builds the WebRTC stacks.
func New(cfg Config) (*SFU, error) {
	cfg = withDefaults(cfg)
	log := cfg.Logger

	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}

	ip := net.ParseIP(cfg.ListenIP)
	if ip == nil {
		return nil, fmt.Errorf("sfu: listen IP %q is not an IP address", cfg.ListenIP)
	}
	lf := newPionLoggerFactory(log, m)
	udpMux, batch, tcpListener, port, err := listenMedia(cfg, ip, lf, m.network.oversized)
	if err != nil {
		return nil, err
	}
	s := &SFU{
		cfg:     cfg,
		log:     log,
		metrics: m,
		port:    port,
		rooms:   make(map[string]*room),
		udpMux:  udpMux,
		batch:   batch,
	}
	if s.cands, err = newCandidatePolicy(cfg, ownAddrs(udpMux), cfg.Registerer); err != nil {
		_ = s.closeSockets()
		return nil, err
	}
	if tcpListener != nil {
		// With a write buffer, a subscriber whose TCP window is full loses
		// packets instead of stalling the track's other subscribers.
		s.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:        tcpListener,
			Logger:          lf.NewLogger("tcpmux"),
			ReadBufferSize:  tcpReadBufferSize,
			WriteBufferSize: tcpWriteBufferSize,
		})
	}

	if s.se, err = s.settingEngine(ip, lf); err != nil {
		_ = s.closeSockets()
		return nil, err
	}
	strict := strictFactory{opts: newStrictOptions(), m: m.strict}
	if s.pubStack, err = newConnStack(cfg.AudioLevelExtension, strict, newPublisherInterceptors); err != nil {
		_ = s.closeSockets()
		return nil, err
	}
	if s.subStack, err = newConnStack(cfg.AudioLevelExtension, strict, newSubscriberInterceptors); err != nil {
		_ = s.closeSockets()
		return nil, err
	}
	log.Info("sfu: SFU listening", "ip", cfg.ListenIP, "port", port, "tcp", s.tcpMux != nil)
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.ListenIP == "" {
		cfg.ListenIP = defaultListenIP
	}
	if cfg.PacketCacheSize <= 0 {
		cfg.PacketCacheSize = defaultPacketCacheSize
	}
	if cfg.PacketCacheSize > maxPacketCacheSize {
		cfg.PacketCacheSize = maxPacketCacheSize
	}
	if cfg.KeyframeRequestInterval <= 0 {
		cfg.KeyframeRequestInterval = defaultKeyframeRequestInterval
	}
	cfg.AudioMaxBitrate = orDefault(cfg.AudioMaxBitrate, DefaultAudioMaxBitrate)
	cfg.AudioMaxPacketRate = orDefault(cfg.AudioMaxPacketRate, DefaultAudioMaxPacketRate)
	cfg.VideoMaxBitrate = orDefault(cfg.VideoMaxBitrate, DefaultVideoMaxBitrate)
	cfg.VideoMaxPacketRate = orDefault(cfg.VideoMaxPacketRate, DefaultVideoMaxPacketRate)
	if cfg.RateLimitEndFactor <= 0 {
		cfg.RateLimitEndFactor = DefaultRateLimitEndFactor
	}
	if cfg.RateLimitEndAfter <= 0 {
		cfg.RateLimitEndAfter = DefaultRateLimitEndAfter
	}
	if cfg.ICEDisconnectedTimeout <= 0 {
		cfg.ICEDisconnectedTimeout = defaultICEDisconnectedTimeout
	}
	if cfg.ICEFailedTimeout <= 0 {
		cfg.ICEFailedTimeout = defaultICEFailedTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// listenMedia binds the ICE UDP mux and, unless off, the ICE-TCP listener
// on the same port number. On the unspecified address every interface
// address gets a UDP socket of its own, so that a multi-homed host answers
// a peer from the address the peer sent to.
func listenMedia(cfg Config, ip net.IP, lf logging.LoggerFactory, oversized prometheus.Counter) (ice.UDPMux, *batchGroup, net.Listener, int, error) {
	logger := lf.NewLogger("udpmux")
	switch {
	case cfg.Net != nil:
		udp, err := cfg.Net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: cfg.Port})
		if err != nil {
			return nil, nil, nil, 0, fmt.Errorf("sfu: bind UDP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(cfg.Port)), err)
		}
		mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: logger, UDPConn: udp, Net: cfg.Net})
		return mux, nil, nil, udp.LocalAddr().(*net.UDPAddr).Port, nil
	case ip.IsUnspecified():
		return listenEveryInterface(ip, cfg.Port, !cfg.DisableTCP, cfg.IncludeLoopback, !cfg.DisableBatchedWrites, logger, oversized)
	default:
		udp, tcp, err := bindMediaPort(ip, cfg.Port, !cfg.DisableTCP)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		port := udp.LocalAddr().(*net.UDPAddr).Port
		if cfg.DisableBatchedWrites {
			return webrtc.NewICEUDPMux(logger, udp), nil, tcp, port, nil
		}
		bc := newBatchConn(udp)
		bc.oversized = oversized
		mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: logger, UDPConn: bc})
		return mux, &batchGroup{conns: []*batchConn{bc}}, tcp, port, nil
	}
}

// listenEveryInterface finds the port by binding the unspecified address,
// then replaces that UDP socket with one per interface address, trying
// another port if one is taken in between.
func listenEveryInterface(ip net.IP, port int, withTCP, loopback, batch bool, logger logging.LeveledLogger, oversized prometheus.Counter) (ice.UDPMux, *batchGroup, net.Listener, int, error) {
	attempts := 1
	if port == 0 {
		attempts = bindAttempts
	}
	var lastErr error
	for range attempts {
		udp, tcp, err := bindMediaPort(ip, port, withTCP)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		got := udp.LocalAddr().(*net.UDPAddr).Port
		_ = udp.Close()
		opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLogger(logger)}
		if loopback {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		var group *batchGroup
		if batch {
			bn, err := newBatchNet()
			if err != nil {
				if tcp != nil {
					_ = tcp.Close()
				}
				return nil, nil, nil, 0, fmt.Errorf("sfu: network: %w", err)
			}
			bn.oversized = oversized
			group = &bn.group
			opts = append(opts, ice.UDPMuxFromPortWithNet(bn))
		}
		mux, err := ice.NewMultiUDPMuxFromPort(got, opts...)
		if err == nil && len(mux.GetListenAddresses()) == 0 {
			_ = mux.Close()
			err = errors.New("no interface address to listen on")
		}
		if err == nil {
			return mux, group, tcp, got, nil
		}
		if tcp != nil {
			_ = tcp.Close()
		}
		lastErr = fmt.Errorf("sfu: bind UDP port %d on every interface: %w", got, err)
	}
	return nil, nil, nil, 0, lastErr
}

// bindMediaPort binds UDP on ip:port and, when withTCP, TCP on the port
// UDP got, trying another if port is 0 and that one is taken for TCP.
func bindMediaPort(ip net.IP, port int, withTCP bool) (*net.UDPConn, net.Listener, error) {
	attempts := 1
	if port == 0 {
		attempts = bindAttempts
	}
	var lastErr error
	for range attempts {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			return nil, nil, fmt.Errorf("sfu: bind UDP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
		}
		if !withTCP {
			return udp, nil, nil
		}
		got := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: got})
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		lastErr = fmt.Errorf("sfu: bind TCP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(got)), err)
	}
	return nil, nil, lastErr
}

func (s *SFU) settingEngine(ip net.IP, lf logging.LoggerFactory) (webrtc.SettingEngine, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = lf
	se.SetICEUDPMux(s.udpMux)
	if s.cfg.Net != nil {
		se.SetNet(s.cfg.Net)
	}
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if s.tcpMux != nil {
		se.SetICETCPMux(s.tcpMux)
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(types)
	if !ip.IsUnspecified() {
		// ICE-TCP gathers from every interface: keep it to ours.
		se.SetIPFilter(func(candidate net.IP) bool { return candidate.Equal(ip) })
	}
	if len(s.cfg.PublicIPs) > 0 {
		// 1:1 NAT: host candidates carry the public addresses.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        s.cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return se, fmt.Errorf("sfu: public IPs %v: %w", s.cfg.PublicIPs, err)
		}
	}
	se.SetIncludeLoopbackCandidate(s.cfg.IncludeLoopback)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(s.cfg.ICEDisconnectedTimeout, s.cfg.ICEFailedTimeout, iceKeepaliveInterval)
	se.SetLite(false)
	return se, nil
}

// connStack is the codecs and interceptors of one kind of connection.
type connStack struct {
	media *webrtc.MediaEngine
	reg   *interceptor.Registry
}

func newConnStack(audioLevel bool, strict interceptor.Factory, interceptors func(*interceptor.Registry) error) (connStack, error) {
	me, err := newMediaEngine(audioLevel)
	if err != nil {
		return connStack{}, err
	}
	reg, err := newInterceptorRegistry(strict, interceptors)
	if err != nil {
		return connStack{}, err
	}
	return connStack{media: me, reg: reg}, nil
}

// newPeerConnection builds a connection on a webrtc.API of its own, so
// that guard, as its BufferFactory, counts every stream pion opens on it.
func (s *SFU) newPeerConnection(st connStack, guard *ssrcGuard, cfg webrtc.Configuration) (*webrtc.PeerConnection, error) {
	se := s.se
	se.BufferFactory = guard.newBuffer
	api := webrtc.NewAPI(
		webrtc.WithSettingEngine(se),
		webrtc.WithMediaEngine(st.media),
		webrtc.WithInterceptorRegistry(st.reg),
	)
	return api.NewPeerConnection(cfg)
}

func newMediaEngine(audioLevel bool) (*webrtc.MediaEngine, error) {
	me := &webrtc.MediaEngine{}
	if err := wire.RegisterCodecs(me, audioLevel); err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	return me, nil
}

// newInterceptorRegistry puts the strict checks first: innermost, they see
// a packet before any other interceptor parses it
// (TestStrictInterceptorIsFirst).
func newInterceptorRegistry(strict interceptor.Factory, add func(*interceptor.Registry) error) (*interceptor.Registry, error) {
	reg := &interceptor.Registry{}
	reg.Add(strict)
	if err := add(reg); err != nil {
		return nil, err
	}
	return reg, nil
}

// newPublisherInterceptors: NACKs to the publisher, receiver reports, TWCC.
func newPublisherInterceptors(reg *interceptor.Registry) error {
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return fmt.Errorf("sfu: nack generator: %w", err)
	}
	reg.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return fmt.Errorf("sfu: receiver reports: %w", err)
	}
	reg.Add(rr)
	tw, err := twcc.NewSenderInterceptor()
	if err != nil {
		return fmt.Errorf("sfu: twcc sender: %w", err)
	}
	reg.Add(tw)
	return nil
}

// newSubscriberInterceptors: sender reports only. The SFU answers NACKs
// from the track's shared cache, not a copy per subscriber.
func newSubscriberInterceptors(reg *interceptor.Registry) error {
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return fmt.Errorf("sfu: sender reports: %w", err)
	}
	reg.Add(sr)
	return nil
}

// Port returns the media port bound, UDP and (unless disabled) TCP.
func (s *SFU) Port() int { return s.port }

// Close closes every participant and then the media sockets.
func (s *SFU) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		var all []*Participant
		for _, r := range s.rooms {
			for _, p := range r.participants {
				all = append(all, p)
			}
		}
		s.mu.Unlock()
		for _, p := range all {
			p.Close()
		}
		err = s.closeSockets()
	})
	return err
}

func (s *SFU) closeSockets() error {
	var errs []error
	if s.tcpMux != nil {
		if err := s.tcpMux.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sfu: close TCP mux: %w", err))
		}
	}
	if err := s.udpMux.Close(); err != nil {
		errs = append(errs, fmt.Errorf("sfu: close UDP mux: %w", err))
	}
	return errors.Join(errs...)
}
