//go:build invariants || race

package versioning

// invariantsEnabled turns on self-checks of every state Update and Sync
// produce. They cost O(siblings × actors) per call, so they run only in
// race-enabled and -tags invariants builds (CI runs the suite with -race).
const invariantsEnabled = true
