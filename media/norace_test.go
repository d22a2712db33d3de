//go:build !race

package media

// raceDetector is true under -race (race_test.go).
const raceDetector = false
