//go:build race

package media

// raceDetector is true under -race, where sync.Pool drops a quarter of
// what is put back (deliberately, to expose misuse), so code that reuses
// pooled buffers, pion/srtp's and x/net's included, allocates.
const raceDetector = true
