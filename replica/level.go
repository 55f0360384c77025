package replica

import (
	"errors"
	"fmt"
	"strconv"
)

// Level is a consistency level for r, w, pr or pw. The zero Level means
// "the node's default".
type Level struct {
	kind levelKind
	n    int
}

type levelKind uint8

const (
	levelDefault levelKind = iota
	levelOne
	levelQuorum
	levelAll
	levelNumber
)

// Predefined levels.
var (
	Default = Level{}
	One     = Level{kind: levelOne}
	Quorum  = Level{kind: levelQuorum}
	All     = Level{kind: levelAll}
)

// Number returns the level "k replicas".
func Number(k int) Level { return Level{kind: levelNumber, n: k} }

// ErrInvalidLevel is wrapped by ParseLevel errors.
var ErrInvalidLevel = errors.New("invalid consistency level")

// ParseLevel parses one | quorum | all | default | 1..maxN.
func ParseLevel(s string, maxN int) (Level, error) {
	switch s {
	case "one":
		return One, nil
	case "quorum":
		return Quorum, nil
	case "all":
		return All, nil
	case "default":
		return Default, nil
	}
	k, err := strconv.Atoi(s)
	if err != nil {
		return Level{}, fmt.Errorf("%w %q: want one, quorum, all or a number 1..%d", ErrInvalidLevel, s, maxN)
	}
	if k < 1 || k > maxN {
		return Level{}, fmt.Errorf("%w %q: a number must be in 1..%d (N)", ErrInvalidLevel, s, maxN)
	}
	return Number(k), nil
}

// String returns the level as ParseLevel accepts it.
func (l Level) String() string {
	switch l.kind {
	case levelOne:
		return "one"
	case levelQuorum:
		return "quorum"
	case levelAll:
		return "all"
	case levelNumber:
		return strconv.Itoa(l.n)
	}
	return "default"
}

// IsDefault reports whether l is the zero Level.
func (l Level) IsDefault() bool { return l.kind == levelDefault }

// Required returns how many acks the level needs with nEff replicas; the
// default level resolves to def (which must not itself be Default).
func (l Level) Required(nEff int, def Level) int {
	if l.kind == levelDefault {
		l = def
	}
	switch l.kind {
	case levelOne:
		return 1
	case levelAll:
		return nEff
	case levelNumber:
		return min(l.n, nEff)
	}
	return nEff/2 + 1
}
