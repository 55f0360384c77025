//go:build !(invariants || race)

package ring

const invariantsEnabled = false
