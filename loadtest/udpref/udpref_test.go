package udpref

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestRunMeasuresEveryMethod(t *testing.T) {
	rep, err := Run(context.Background(), Options{Duration: 100 * time.Millisecond, Size: 200, Batch: 8})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{MethodSendto, MethodSendmmsg, MethodSRTPSendto, MethodSRTPSendmmsg}
	if len(rep.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(want))
	}
	for i, res := range rep.Results {
		if res.Method != want[i] {
			t.Errorf("result %d is %q, want %q", i, res.Method, want[i])
		}
		// Loopback UDP always moves some packets; how many is the
		// machine's business, not the test's.
		if res.Packets == 0 || res.Received == 0 || res.PacketsPerSecond <= 0 {
			t.Errorf("%s: %+v", res.Method, res)
		}
		if res.Received > res.Packets {
			t.Errorf("%s: received %d of %d sent", res.Method, res.Received, res.Packets)
		}
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "srtp+sendmmsg") {
		t.Errorf("table:\n%s", buf.String())
	}
}

func TestOptionsAreChecked(t *testing.T) {
	tests := []Options{
		{Duration: -time.Second},
		{Size: 10},
		{Size: 9000},
		{Batch: -1},
		{Batch: 5000},
	}
	for _, o := range tests {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) accepted", o)
		}
	}
}

func TestCancelledRunStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, Options{Duration: time.Hour})
	if err == nil || len(rep.Results) != 0 {
		t.Errorf("Run on a cancelled context = %d results, %v", len(rep.Results), err)
	}
}
