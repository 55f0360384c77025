//go:build !(invariants || race)

package versioning

const invariantsEnabled = false
