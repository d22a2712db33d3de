package signaling

// SetOfferHook makes fn run before every publisher offer is applied, until
// the test ends (restore is called).
func SetOfferHook(fn func(id string)) (restore func()) {
	testOfferHook.Store(&fn)
	return func() { testOfferHook.Store(nil) }
}
