//go:build invariants || race

package ring

// invariantsEnabled makes New check the ring it built (every preference
// list a permutation of the members, N primaries, capacity respected).
// The check costs about as much as the build, so it runs only in
// race-enabled and -tags invariants builds (CI runs the suite with -race).
const invariantsEnabled = true
