package rtcpstrict

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/sotto-rtc/sotto/media/rtcpstrict/rtcptest"
)

// TestCheckAgreesWithValidate: Check and CheckRTP name the rule Validate
// and ValidateRTP would, for every seed, accepted or refused.
func TestCheckAgreesWithValidate(t *testing.T) {
	for _, o := range []Options{{}, {ReducedSize: true}} {
		for name, buf := range rtcptest.ReadCorpus(t, corpusDir, "FuzzRTCP") {
			want, _ := RuleOf(o.Validate(buf))
			if got := o.Check(buf); got != want {
				t.Errorf("%s (reduced %v): Check %q, Validate %q", name, o.ReducedSize, got, want)
			}
		}
	}
	for name, buf := range rtcptest.ReadCorpus(t, corpusDir, "FuzzRTP") {
		want, _ := RuleOf(ValidateRTP(buf))
		if got := (Options{}).CheckRTP(buf); got != want {
			t.Errorf("%s: CheckRTP %q, ValidateRTP %q", name, got, want)
		}
	}
	for name, buf := range rtcptest.RTPFixtures(t) {
		if got := (Options{}).CheckRTP(buf); got != "" {
			t.Errorf("%s: CheckRTP refused a good packet: %s", name, got)
		}
	}
}

// TestCheckDoesNotAllocate: a refusal costs no allocation through Check and
// CheckRTP, so a flood of hostile packets creates no garbage.
func TestCheckDoesNotAllocate(t *testing.T) {
	reduced := Options{ReducedSize: true}
	for name, buf := range rtcptest.ReadCorpus(t, corpusDir, "FuzzRTCP") {
		if n := rtcptest.Allocs(20, func() { _ = reduced.Check(buf) }); n != 0 {
			t.Errorf("%s: 20 calls of Check allocated %d times, want 0", name, n)
		}
	}
	for name, buf := range rtcptest.ReadCorpus(t, corpusDir, "FuzzRTP") {
		if n := rtcptest.Allocs(20, func() { _ = reduced.CheckRTP(buf) }); n != 0 {
			t.Errorf("%s: 20 calls of CheckRTP allocated %d times, want 0", name, n)
		}
	}
}

// TestRefusalDetails: every refuse call passes as many numbers as its
// format has verbs, and no more than a refusal holds, so no detail is ever
// cut short or printed with %!d(MISSING).
func TestRefusalDetails(t *testing.T) {
	fset := token.NewFileSet()
	calls := 0
	for _, file := range []string{"rtcp.go", "rtp.go"} {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "refuse" {
				return true
			}
			calls++
			lit, ok := call.Args[2].(*ast.BasicLit)
			if !ok {
				t.Errorf("%s: refuse's format is not a literal", fset.Position(call.Pos()))
				return true
			}
			format, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			verbs := strings.Count(format, "%") - 2*strings.Count(format, "%%")
			args := len(call.Args) - 3
			if verbs != args || args > maxRefusalArgs {
				t.Errorf("%s: %d verbs, %d arguments (at most %d)", fset.Position(call.Pos()), verbs, args, maxRefusalArgs)
			}
			return true
		})
	}
	if calls < 50 {
		t.Fatalf("found only %d refuse calls; is the test reading the right files?", calls)
	}
}
