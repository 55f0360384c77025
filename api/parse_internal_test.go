package api

import (
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// parseQuery must agree with url.ParseQuery, which it replaces on the
// request path: the same pairs (as a multiset: the map has no order) and
// the same error.
func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{
		"", "w=2", "w=quorum&timeout=5000", "r=1&pr=1&timeout=250ms&repair=sync",
		"w=1&w=2", "w", "w=", "=1", "&&w=1&", "a;b=1", "w=1;pw=1", "w=%zz", "%zz=1",
		"w=%41&%77=1", "w=a+b", "a=1&b=2&c=3&d=4&e=5", "a=1&b=2&c=3&d=4", "a=1&b=2&c=3&d=4&",
		"x=%zz&y;=1", "y;=1&x=%zz", "w=1&&&&&&&timeout=5",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		var buf [maxParams]queryParam
		got, err := parseQuery(buf[:0], query)
		want, wantErr := url.ParseQuery(query)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("parseQuery(%q) error %v, url.ParseQuery's %v", query, err, wantErr)
		}
		var pairs []queryParam
		for name, vals := range want {
			for _, v := range vals {
				pairs = append(pairs, queryParam{name, v})
			}
		}
		order := func(a, b queryParam) int {
			if c := strings.Compare(a.name, b.name); c != 0 {
				return c
			}
			return strings.Compare(a.value, b.value)
		}
		slices.SortStableFunc(got, order)
		slices.SortStableFunc(pairs, order)
		if !slices.Equal(got, pairs) {
			t.Fatalf("parseQuery(%q) = %q, url.ParseQuery gives %q", query, got, pairs)
		}
	})
}

// acceptsJSON must agree with its first, plain version, which parsed
// every media range.
func FuzzAcceptsJSON(f *testing.F) {
	for _, a := range []string{
		"", "*/*", "application/json", "Application/JSON", " application/json ", "text/html, application/json",
		"application/json;q=0", "application/json; q=0.0", "application/json;q=0.5", "application/json;q=x",
		"application/json;", "application/json; charset=utf-8", "application/json;;", "application/json; a",
		"application/json,", ",application/json", "application/jsonx", "application/json ;q=0",
		"appl\u0130cation/json", "text/plain;q=0, application/json;q=0", "application/json\t;q=1",
	} {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		if got, want := acceptsJSON(accept), acceptsJSONReference(accept); got != want {
			t.Fatalf("acceptsJSON(%q) = %v, want %v", accept, got, want)
		}
	})
}

func acceptsJSONReference(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != "application/json" {
			continue
		}
		if q, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				continue
			}
		}
		return true
	}
	return false
}
