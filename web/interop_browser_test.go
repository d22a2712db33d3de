package web_test

// A Go SDK client and a browser in one end-to-end encrypted call: each
// decrypts and decodes the other's media. The Go client sends real VP8 and
// Opus that ffmpeg encodes at test time; the browser sends its (fake)
// camera, and the Go client writes the decrypted frames to an IVF file
// that ffmpeg must decode.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/sotto-rtc/sotto/internal/testneeds"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// The fixture the Go client sends: what ffmpeg's test source gives at this
// size, so the browser's decoded width can be checked against it.
const (
	fixtureWidth  = 320
	fixtureHeight = 240
	fixtureFPS    = 30
)

// makeFixtures encodes 10 s of VP8 video (a key frame every second) and
// Opus audio (20 ms frames, one per Ogg page) with ffmpeg.
func makeFixtures(t *testing.T) (ivf, ogg string) {
	t.Helper()
	ffmpeg := testneeds.Program(t, testneeds.Browser, "ffmpeg", "ffmpeg")
	dir := t.TempDir()
	ivf, ogg = filepath.Join(dir, "video.ivf"), filepath.Join(dir, "audio.ogg")
	for _, args := range [][]string{
		{"-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=%d", fixtureWidth, fixtureHeight, fixtureFPS),
			"-t", "10", "-c:v", "libvpx", "-b:v", "300k", "-g", strconv.Itoa(fixtureFPS), "-deadline", "realtime",
			"-cpu-used", "8", "-f", "ivf", ivf},
		{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "10", "-c:a", "libopus",
			"-b:a", "32k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg", ogg},
	} {
		cmd := exec.Command(ffmpeg, append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	return ivf, ogg
}

// sendIVF writes the IVF file's frames to pub at its frame rate, looping,
// until ctx ends.
func sendIVF(ctx context.Context, pub *client.Publication, path string) error {
	for {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		r, h, err := ivfreader.NewWith(f)
		if err != nil {
			f.Close()
			return err
		}
		every := time.Second * time.Duration(h.TimebaseNumerator) / time.Duration(h.TimebaseDenominator)
		tick := time.NewTicker(every)
		for {
			frame, _, err := r.ParseNextFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				tick.Stop()
				f.Close()
				return err
			}
			select {
			case <-ctx.Done():
				tick.Stop()
				f.Close()
				return nil
			case <-tick.C:
			}
			if err := pub.WriteSample(media.Sample{Data: frame, Duration: every}); err != nil {
				tick.Stop()
				f.Close()
				return err
			}
		}
		tick.Stop()
		f.Close()
	}
}

// sendOgg writes the Ogg file's Opus packets (one per page) to pub every
// 20 ms, looping, until ctx ends.
func sendOgg(ctx context.Context, pub *client.Publication, path string) error {
	const every = 20 * time.Millisecond
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		r, _, err := oggreader.NewWith(f)
		if err != nil {
			f.Close()
			return err
		}
		for {
			page, _, err := r.ParseNextPage()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return err
			}
			if bytes.HasPrefix(page, []byte("OpusTags")) {
				continue
			}
			select {
			case <-ctx.Done():
				f.Close()
				return nil
			case <-tick.C:
			}
			if err := pub.WriteSample(media.Sample{Data: page, Duration: every}); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
}

// ivfFile writes VP8 frames as an IVF file (the format ffmpeg reads).
type ivfFile struct {
	f      *os.File
	frames uint32
}

func createIVF(path string, width, height uint16) (*ivfFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint16(h[12:], width)
	binary.LittleEndian.PutUint16(h[14:], height)
	binary.LittleEndian.PutUint32(h[16:], 90000) // timebase: RTP clock
	binary.LittleEndian.PutUint32(h[20:], 1)
	if _, err := f.Write(h); err != nil {
		f.Close()
		return nil, err
	}
	return &ivfFile{f: f}, nil
}

func (w *ivfFile) write(frame []byte, pts uint64) error {
	var h [12]byte
	binary.LittleEndian.PutUint32(h[:], uint32(len(frame)))
	binary.LittleEndian.PutUint64(h[4:], pts)
	if _, err := w.f.Write(h[:]); err != nil {
		return err
	}
	_, err := w.f.Write(frame)
	w.frames++
	return err
}

func (w *ivfFile) close() error {
	// The frame count in the header, for players that read it.
	if _, err := w.f.WriteAt(binary.LittleEndian.AppendUint32(nil, w.frames), 24); err != nil {
		w.f.Close()
		return err
	}
	return w.f.Close()
}

func TestBrowserGoInteropCall(t *testing.T) {
	ivf, ogg := makeFixtures(t)
	ffprobe := testneeds.Program(t, testneeds.Browser, "ffmpeg", "ffprobe")
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*browserTimeout)
	defer cancel()

	// The Go participant, E2EE on (the default).
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	tracks := make(chan *client.RemoteTrack, 4)
	goc, err := client.Connect(ctx, srv.URL, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("interop", "go", true, true),
		SettingEngine: &se,
		Logger:        testLogger(),
		Handlers: client.Handlers{Track: func(rt *client.RemoteTrack) {
			select {
			case tracks <- rt:
			default:
			}
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer goc.Close()
	cam, err := goc.PublishSample(ctx, "camera", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	mic, err := goc.PublishSample(ctx, "mic", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	sent := make(chan error, 2)
	go func() { sent <- sendIVF(sendCtx, cam, ivf) }()
	go func() { sent <- sendOgg(sendCtx, mic, ogg) }()

	// The browser joins the same room with the page, camera and mic on.
	tab := b.tab(t, "browser")
	if err := chromedp.Do(tab, chromedp.Navigate(srv.URL+"/?room=interop&name=browser")); err != nil {
		t.Fatal(err)
	}

	// The browser decodes the Go client's VP8 at the size ffmpeg encoded.
	goVideo := `document.querySelector('[data-identity="go"] video')`
	describe := `(() => { const v = ` + goVideo + `; const tile = document.querySelector('[data-identity="go"]');
		return {tile: !!tile, e2ee: tile && tile.dataset.e2eeState, width: v && v.videoWidth, height: v && v.videoHeight,
			frames: v && v.getVideoPlaybackQuality().totalVideoFrames, status: document.body.innerText.slice(0, 300)} })()`
	waitFor(t, tab, "the browser shows the Go client's video",
		`(() => { const v = `+goVideo+`; return !!v && v.videoWidth > 0 })()`, describe)
	var first struct {
		Width, Height, Frames int
		E2EE                  string `json:"e2ee"`
	}
	if err := evaluate(tab, describe, &first); err != nil {
		t.Fatal(err)
	}
	if first.Width != fixtureWidth || first.Height != fixtureHeight {
		t.Fatalf("the browser decodes the Go client's video at %dx%d; it was sent at %dx%d", first.Width, first.Height, fixtureWidth, fixtureHeight)
	}
	waitFor(t, tab, "the browser keeps decoding the Go client's video",
		fmt.Sprintf(`(`+goVideo+`).getVideoPlaybackQuality().totalVideoFrames >= %d`, first.Frames+30), describe)
	waitFor(t, tab, "the browser shows the Go client as encrypted",
		`document.querySelector('[data-identity="go"]').dataset.e2eeState === "encrypted"`, describe)

	// And its Opus: decrypted, and decoded into sound (ffmpeg's 440 Hz
	// sine has energy; a frame that failed would be concealed silence).
	goAudio := `(async () => (await window.sotto.call.inboundStats()).find(s => s.identity === "go" && s.kind === "audio") || null)()`
	var audio0 struct {
		PacketsReceived  int     `json:"packetsReceived"`
		TotalAudioEnergy float64 `json:"totalAudioEnergy"`
		E2EE             struct {
			Decrypted, Rejected, NoKey int
		} `json:"e2ee"`
	}
	if err := evaluate(tab, goAudio, &audio0); err != nil {
		t.Fatal(err)
	}
	// The page keeps the latest stats in a global the poll can read.
	if err := evaluate(tab, `window.__goAudioTimer = setInterval(async () => {
		window.__goAudio = (await window.sotto.call.inboundStats()).find(s => s.identity === "go" && s.kind === "audio");
	}, 200), true`, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "the browser decodes the Go client's Opus",
		fmt.Sprintf(`!!window.__goAudio && window.__goAudio.totalAudioEnergy > %g && window.__goAudio.e2ee.decrypted > %d`,
			audio0.TotalAudioEnergy, audio0.E2EE.Decrypted+50),
		`window.__goAudio`)

	// The Go client receives the browser's camera, decrypts it, and the
	// frames are VP8 that ffmpeg decodes.
	var video *client.RemoteTrack
	for video == nil {
		select {
		case rt := <-tracks:
			if rt.Participant.Identity == "browser" && rt.Info.Kind == wire.KindVideo {
				video = rt
			}
		case <-ctx.Done():
			t.Fatal("the Go client never received the browser's video")
		}
	}
	if !video.Info.E2EE || video.Info.Codec != webrtc.MimeTypeVP8 {
		t.Fatalf("the browser's video is %s, e2ee %v; want VP8, end-to-end encrypted", video.Info.Codec, video.Info.E2EE)
	}
	out := filepath.Join(t.TempDir(), "from-browser.ivf")
	w, err := createIVF(out, 640, 480)
	if err != nil {
		t.Fatal(err)
	}
	keyFrames := 0
	const want = 60
	for got := 0; got < want; {
		f, err := video.ReadFrame()
		if err != nil {
			t.Fatalf("reading the browser's video: %v (stats %+v)", err, video.Stats())
		}
		if !f.Encrypted {
			t.Fatal("a frame from the browser arrived without end-to-end encryption")
		}
		if got == 0 && f.Data[0]&1 != 0 {
			continue // start the file at a key frame
		}
		if f.Data[0]&1 == 0 {
			keyFrames++
		}
		if err := w.write(f.Data, uint64(f.Timestamp)); err != nil {
			t.Fatal(err)
		}
		got++
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	probe, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "default=noprint_wrappers=1", out).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe cannot decode what the browser sent: %v\n%s", err, probe)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(probe)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			fields[k] = v
		}
	}
	n, _ := strconv.Atoi(fields["nb_read_frames"])
	if fields["codec_name"] != "vp8" || n < want*9/10 {
		t.Fatalf("ffprobe: %v; want vp8 with about %d decoded frames", fields, want)
	}
	t.Logf("browser decoded the Go client's %dx%d VP8 (%d+ frames); the Go client decrypted %d browser frames (%d key frames) that ffprobe decodes: %v; stats %+v",
		first.Width, first.Height, first.Frames+30, want, keyFrames, fields, video.Stats())

	stopSending()
	for range 2 {
		if err := <-sent; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("sending the fixtures: %v", err)
		}
	}
}
