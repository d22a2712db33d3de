package loadtest

import (
	"errors"
	"fmt"
	"time"
)

// fill computes the report once every participant has left.
func (r *runner) fill(rep *Report, sc scrapes) {
	cfg := r.cfg
	rep.Config = reportConfig(cfg)
	r.mu.Lock()
	rep.ParticipantsExpected = cfg.participants()
	rep.ParticipantsJoined = len(r.joinTimes)
	rep.JoinFailures = r.joinFails
	rep.JoinRetries = r.joinRetries
	rep.JoinMS = durationPercentiles(r.joinTimes)
	rep.Errors = r.errCount
	rep.ErrorSamples = append([]string{}, r.errSamples...)
	pts := append([]*pubTrack(nil), r.pubTracks...)
	sts := append([]*subTrack(nil), r.subOrder...)
	r.mu.Unlock()
	rep.Reconnects = int(r.reconnects.Load())
	if !cfg.DisableE2EE {
		rep.Admission = &AdmissionReport{
			Policy:       "admit all",
			Admitted:     int(r.admitted.Load()),
			Admissions:   int(r.admissions.Load()),
			RosterAlerts: int(r.rosterAlerts.Load()),
		}
	}
	rep.MalformedFrames = r.malformed.Load()
	rep.TracksPublished = len(pts)
	rep.TracksExpected = cfg.expectedTracks()
	fillSent(rep, pts)
	fillReceived(rep, sts)
	rep.E2ELatencyMS = r.latency.Percentiles()
	rep.SFU = sfuReport(cfg.MetricsURL, sc.before, sc.beforeErr, sc.w0, sc.w0Err, sc.w1, sc.w1Err, rep.ParticipantsConnected)
}

func reportConfig(cfg Config) ReportConfig {
	return ReportConfig{
		URL:              cfg.URL,
		Rooms:            cfg.Rooms,
		Publishers:       cfg.Publishers,
		Subscribers:      cfg.Subscribers,
		DurationSeconds:  cfg.Duration.Seconds(),
		Media:            cfg.Media.String(),
		VideoBitrateBPS:  cfg.VideoBitrate,
		E2EE:             !cfg.DisableE2EE,
		RampPerSecond:    cfg.Ramp,
		MaxLoss:          cfg.Thresholds.MaxLoss,
		MaxP95JoinMS:     float64(cfg.Thresholds.MaxP95Join) / float64(time.Millisecond),
		AudioFrameBytes:  audioFrameBytes,
		VideoFPS:         videoFPS,
		KeyframeInterval: keyframeInterval.Seconds(),
	}
}

// fillSent counts what the encoders sent, and the frames they skipped.
func fillSent(rep *Report, pts []*pubTrack) {
	var sentRates []float64
	for _, pt := range pts {
		rep.FramesSent += pt.frames.Load()
		if rep.MeasuredSeconds > 0 && pt.start.Load() >= 0 {
			sentRates = append(sentRates, float64(pt.bytesAtEnd.Load()-pt.bytesAtStart.Load())*8/rep.MeasuredSeconds)
		}
		if last := pt.last.Load(); last >= 0 {
			interval := audioFrameInterval
			if pt.kind == "video" {
				interval = time.Second / videoFPS
			}
			due := (pt.lastUS.Load()-pt.firstUS.Load())/interval.Microseconds() + 1
			rep.FramesSkipped += uint64(max(due-(last+1), 0))
		}
	}
	rep.SentBitrateBPS = mean(sentRates)
}

// fillReceived counts what the subscriptions received: frames, loss,
// jitter, bitrates and decryption failures.
func fillReceived(rep *Report, sts []*subTrack) {
	var jitters, rates, audio, video []float64
	for _, st := range sts {
		ramp, window := st.counts()
		st.mu.Lock()
		if st.frames > 0 {
			rep.TracksReceived++
		}
		rep.Ramp.FramesExpected += ramp.expected
		rep.Ramp.FramesReceived += ramp.received
		rep.FramesExpected += window.expected
		rep.FramesReceived += window.received
		if st.wFrames > 1 {
			jitters = append(jitters, st.jit.j/1000)
			if span := float64(st.wLastUS-st.wFirstUS) / 1e6; span > 0 {
				bps := float64(st.wBytes) * 8 / span
				rates = append(rates, bps)
				if st.kind == "audio" {
					audio = append(audio, bps)
				} else {
					video = append(video, bps)
				}
			}
		}
		for _, rt := range st.remotes {
			s := rt.Stats()
			rep.DecryptFailures += s.Rejected
			rep.DecryptNoKey += s.NoKey
		}
		st.mu.Unlock()
	}
	rep.Ramp.PacketLoss = lossOf(rep.Ramp.FramesExpected, rep.Ramp.FramesReceived)
	rep.PacketLoss = lossOf(rep.FramesExpected, rep.FramesReceived)
	rep.JitterMS = mean(jitters)
	rep.ReceivedBitrateBPS = mean(rates)
	rep.ReceivedBitrateBPSByKind = KindRates{Audio: mean(audio), Video: mean(video)}
}

func lossOf(expected, received uint64) float64 {
	if expected == 0 {
		return 0
	}
	return float64(expected-received) / float64(expected)
}

// sfuReport turns the three reads of /metrics into the report's sfu
// section.
func sfuReport(url string, before sample, beforeErr error, w0 sample, w0Err error, w1 sample, w1Err error, participants int) SFUReport {
	var s SFUReport
	if url == "off" {
		s.Note = "metrics not read (--metrics-url off)"
		return s
	}
	if err := errors.Join(w0Err, w1Err); err != nil {
		s.Note = err.Error()
		return s
	}
	s.Available = true
	s.WindowSeconds = w1.at.Sub(w0.at).Seconds()
	delta := func(name string) float64 { return w1.values[name] - w0.values[name] }
	s.CPUSeconds = delta(metricCPU)
	s.RSSBytes = w1.values[metricRSS]
	s.ForwardedPackets = delta(metricForwarded)
	s.ReceivedPackets = delta(metricReceived)
	s.DroppedPackets = delta(metricDropped)
	s.NACKRetransmissions = delta(metricNACK)
	if s.CPUSeconds > 0 {
		s.ForwardedPerCPUSecond = s.ForwardedPackets / s.CPUSeconds
	}
	var missing []string
	for _, m := range []string{metricCPU, metricRSS, metricForwarded} {
		if !w1.present[m] {
			missing = append(missing, m)
		}
	}
	if beforeErr == nil {
		run := func(name string) float64 { return w1.values[name] - before.values[name] }
		s.SignalingMessages = run(metricMessages)
		s.RelayMessages = run(metricRelays)
		s.SignalingErrors = run(metricErrors)
		s.SlowClientDisconnects = run(metricSlow)
		s.RSSBytesBefore = before.values[metricRSS]
		if participants > 0 && s.RSSBytes > 0 {
			s.RSSBytesPerParticipant = (s.RSSBytes - s.RSSBytesBefore) / float64(participants)
		}
	}
	switch {
	case len(missing) > 0:
		s.Note = fmt.Sprintf("the SFU's /metrics lacks %v: those figures are 0", missing)
	case beforeErr != nil:
		s.Note = "no read before the first join: " + beforeErr.Error()
	}
	return s
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}
