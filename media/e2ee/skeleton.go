package e2ee

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
)

// Skeleton is what a name looks like, for telling apart people whose names
// differ only in ways a screen does not show: "bob", "Bob", "bob" with a
// zero-width space, a fullwidth "ｂｏｂ", "bob" with a combining mark. It is
// NFKC, lower case, NFKC again, and then every code point of general
// category Cf, Cc, Mn, Me, Zs, Zl or Zp, and every variation selector,
// removed (docs/E2EE.md, "Known people"; the browser computes the same).
// Two different names with one skeleton are look-alikes: trust on first use
// warns before trusting the second as a new person.
func Skeleton(name string) string {
	// Full Unicode lower casing (a word-final Σ is ς), as JavaScript's
	// toLowerCase; a Caser is not safe for concurrent use, so one per call.
	s := norm.NFKC.String(cases.Lower(language.Und).String(norm.NFKC.String(name)))
	return strings.Map(func(r rune) rune {
		if unicode.In(r, unicode.Cf, unicode.Cc, unicode.Mn, unicode.Me, unicode.Zs, unicode.Zl, unicode.Zp, unicode.Variation_Selector) {
			return -1
		}
		return r
	}, s)
}
