// Package loadtest drives a running Sotto SFU with simulated participants
// and reports what they experienced and what the SFU spent doing it; it is
// the logic of cmd/loadtest. Each participant is a Go SDK client with
// end-to-end encryption on by default; publishers send synthetic frames
// paced like encoders, each carrying its track id, sequence number and
// send time inside the encrypted part (frame.go), and subscribers count
// loss and latency on those. docs/BENCHMARKS.md has the method, the phases
// of a run, the report's fields and measured figures.
package loadtest
