// Package loadtest drives a running Sotto SFU with simulated participants
// and reports what they experienced and what the SFU spent doing it. It
// is the logic of cmd/loadtest; docs/BENCHMARKS.md has the method, the
// commands and measured figures.
//
// Each participant is a Go SDK client (signaling/client) with end-to-end
// encryption on by default, so the server does the work real callers make
// it do: the same signaling, the same key exchange relays, the same
// SRTP. Publishers send synthetic media paced like real encoders (Opus
// frames of 80 bytes every 20 ms; VP8 at the requested bitrate, 30 frames
// per second, a key frame every 3 s five times an interframe's size)
// through Publication.WriteSample; subscribers receive every track of
// their room and read it with RemoteTrack.ReadFrame, which decrypts.
//
// Every synthetic frame carries, right after the codec's clear prefix and
// so inside the encrypted part, a header with the track's id, the frame's
// sequence number and its send time (frame.go). Loss is counted on those
// sequence numbers, per subscription, frames lost over frames expected:
// the SDK hands over frames, not packets, and a frame missing any packet
// after retransmission, or arriving before its key, never reaches the
// application. Latency is send time to ReadFrame's return, in one process
// on one monotonic clock. A frame that decrypts with the right header is
// also proof that the SFU forwarded the ciphertext intact.
//
// A run has phases: joining (Config.Ramp joins per second), settling
// (until every subscription has delivered a frame), measuring
// (Config.Duration), draining (the last frames of the window arrive) and
// leaving. Loss, latency, jitter and bitrates are over the measuring
// window; the loss before it is reported apart (Report.Ramp). The SFU's
// CPU, memory and packet counters come from its own /metrics, read at the
// window's edges, so the load tool's CPU on the same machine does not
// count.
//
// Report's JSON form is a public contract: docs/BENCHMARKS.md lists every
// field, testdata/report_schema.golden holds them, and SchemaVersion
// changes when one is renamed, removed or changes meaning.
package loadtest
