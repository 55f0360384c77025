package api

import (
	"mime"
	"strconv"
	"strings"
	"testing"
)

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
