package replica

import (
	"errors"
	"testing"
)

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{
		"one": One, "quorum": Quorum, "all": All, "default": Default, "1": Number(1), "3": Number(3),
	} {
		got, err := ParseLevel(in, 3)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in != "default" && got.String() != in {
			t.Errorf("Level(%q).String() = %q", in, got.String())
		}
	}
	for _, in := range []string{"", "0", "4", "-1", "two", "ALL", "1.5"} {
		if _, err := ParseLevel(in, 3); !errors.Is(err, ErrInvalidLevel) {
			t.Errorf("ParseLevel(%q): err = %v, want ErrInvalidLevel", in, err)
		}
	}
}

func TestRequired(t *testing.T) {
	cases := []struct {
		level Level
		nEff  int
		def   Level
		want  int
	}{
		{One, 3, Quorum, 1},
		{Quorum, 3, Quorum, 2},
		{Quorum, 5, Quorum, 3},
		{Quorum, 4, Quorum, 3},
		{Quorum, 1, Quorum, 1},
		{All, 3, Quorum, 3},
		{All, 1, Quorum, 1},
		{Number(2), 3, Quorum, 2},
		{Number(3), 1, Quorum, 1}, // capped: one member can satisfy any level
		{Default, 3, All, 3},
		{Default, 3, Number(1), 1},
	}
	for _, c := range cases {
		if got := c.level.Required(c.nEff, c.def); got != c.want {
			t.Errorf("%v.Required(%d, %v) = %d, want %d", c.level, c.nEff, c.def, got, c.want)
		}
	}
}

func TestUnavailableError(t *testing.T) {
	err := error(&UnavailableError{Op: "write", Kind: "replicas", Acks: 1, Required: 2})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatal("UnavailableError does not wrap ErrUnavailable")
	}
	if got := err.Error(); got != "write: 1 of 2 required replicas reachable: nothing was written" {
		t.Fatalf("Error() = %q", got)
	}
	err = &UnavailableError{Op: "write", Kind: "replicas", Acks: 1, Required: 2, Written: true}
	if got := err.Error(); got != "write: 1 of 2 required replicas acknowledged (outcome unknown: "+
		"the write was applied and the replicas that have it keep it; it may still spread)" {
		t.Fatalf("Error() = %q", got)
	}
	err = &UnavailableError{Op: "read", Kind: "primaries", Acks: 1, Required: 2}
	if got := err.Error(); got != "read: 1 of 2 required primaries answered" {
		t.Fatalf("Error() = %q", got)
	}
}
