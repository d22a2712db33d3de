package e2ee

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
)

// Skeleton is what a name looks like on screen; two names with one skeleton
// are look-alikes (docs/E2EE.md, "Known people"; the browser computes the same).
func Skeleton(name string) string {
	// Full lower casing as JavaScript's toLowerCase; a Caser per call (not concurrency-safe).
	s := norm.NFKC.String(cases.Lower(language.Und).String(norm.NFKC.String(name)))
	return strings.Map(func(r rune) rune {
		if unicode.In(r, unicode.Cf, unicode.Cc, unicode.Mn, unicode.Me, unicode.Zs, unicode.Zl, unicode.Zp, unicode.Variation_Selector) {
			return -1
		}
		return r
	}, s)
}
