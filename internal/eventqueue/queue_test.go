package eventqueue

import (
	"slices"
	"sync"
	"testing"
)

func TestDeliversInOrderAfterStart(t *testing.T) {
	q := New(nil)
	var mu sync.Mutex
	var got []int
	for i := range 5 {
		q.Push(func() { mu.Lock(); got = append(got, i); mu.Unlock() }, nil)
	}
	q.Start()
	q.Finish(func() { mu.Lock(); got = append(got, 99); mu.Unlock() }, false)
	<-q.Done()
	if want := []int{0, 1, 2, 3, 4, 99}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestCloseUnstartedDropsAndTellsDelivered(t *testing.T) {
	q := New(nil)
	ran := false
	d := make(chan struct{})
	q.Push(func() { ran = true }, d)
	q.Close()
	<-d
	<-q.Done()
	q.Start()
	if ran {
		t.Fatal("an event queued before Close ran on an unstarted queue")
	}
}

func TestFinishDropPendingAndPanicContained(t *testing.T) {
	var panics int
	q := New(func(any, []byte) { panics++ })
	block := make(chan struct{})
	q.Push(func() { <-block }, nil)
	q.Push(func() { panic("x") }, nil)
	q.Start()
	dropped := make(chan struct{})
	q.Push(func() { t.Error("dropped event ran") }, dropped)
	q.Finish(func() { panic("last") }, true)
	<-dropped
	close(block)
	<-q.Done()
	if panics != 1 {
		t.Fatalf("%d panics reported, want 1 (the last event's)", panics)
	}
}
