package hold

import (
	"slices"
	"testing"
)

func TestGateHoldsUntilOpenInOrder(t *testing.T) {
	var got []int
	g := NewGate(func(c int) { got = append(got, c) })
	g.Pass(1)
	g.Pass(2)
	if len(got) != 0 || g.Len() != 2 {
		t.Fatalf("a shut gate passed %v and holds %d", got, g.Len())
	}
	g.Open()
	g.Pass(3)
	g.Shut()
	g.Pass(4)
	g.Pass(5)
	g.Drop()
	g.Pass(6)
	g.Open()
	if want := []int{1, 2, 3, 6}; !slices.Equal(got, want) {
		t.Fatalf("passed %v, want %v", got, want)
	}
}
