package api

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dotkv/dotkv/versioning"
)

// TestParseKey covers parseKey directly: net/http refuses a request line
// with an invalid escape before the handler runs, so its bad-escape branch
// cannot be reached over HTTP.
func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"%zz", "", true},
		{"a%", "", true},
		{"a%2", "", true},
		{"", "", true},
		{strings.Repeat("a", MaxKeyLen+1), "", true},
		{strings.Repeat("%61", MaxKeyLen+1), "", true},
		{strings.Repeat("a", MaxKeyLen), strings.Repeat("a", MaxKeyLen), false},
		{"a%2Fb", "a/b", false},
		{"a/../b", "a/../b", false},
		{"%E9%94%AE", "键", false},
		{"a+b", "a+b", false},
	} {
		k, e := parseKey(tc.in)
		if tc.wantErr {
			if e == nil {
				t.Errorf("parseKey(%.20q) = %q, want an error", tc.in, k)
			} else if e.status != http.StatusBadRequest || e.code != codeBadKey || e.msg == "" {
				t.Errorf("parseKey(%.20q) error = %+v, want 400 bad_key", tc.in, e)
			}
			continue
		}
		if e != nil || string(k) != tc.want {
			t.Errorf("parseKey(%.20q) = %q, %v; want %q", tc.in, k, e, tc.want)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1": time.Millisecond, "250": 250 * time.Millisecond, "60000": MaxTimeout,
		"2s": 2 * time.Second, "60s": MaxTimeout, "1m": MaxTimeout, "1500us": 1500 * time.Microsecond,
	} {
		if got, err := parseTimeout(in); err != nil || got != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-5", "abc", "61s", "60001", "0s", "-1ms", "9223372036854775807", "1e3", " 5"} {
		if got, err := parseTimeout(in); err == nil {
			t.Errorf("parseTimeout(%q) = %v, want an error", in, got)
		}
	}
}

// TestMultipartBoundaryAvoidsValues checks that a sibling holding the
// boundary the dots would give does not break the multipart body.
func TestMultipartBoundaryAvoidsValues(t *testing.T) {
	sibs := []versioning.Sibling{
		{Dot: versioning.Dot{Actor: "n1.x", Counter: 2}, Value: []byte("two"), ContentType: "text/plain"},
		{Dot: versioning.Dot{Actor: "n1.x", Counter: 3}, Value: []byte("three"), ContentType: "text/plain"},
	}
	first := multipartBoundary(sibs)
	if multipartBoundary(sibs) != first {
		t.Fatal("boundary is not deterministic")
	}
	sibs[1].Value = []byte("\r\n--" + first + "--\r\n")
	second := multipartBoundary(sibs)
	if second == first {
		t.Fatalf("boundary %q kept although a value holds it", first)
	}
	rec := httptest.NewRecorder()
	writeMultipart(rec, sibs)
	if rec.Code != http.StatusMultipleChoices {
		t.Fatalf("status %d", rec.Code)
	}
	_, params, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	if err != nil || params["boundary"] != second {
		t.Fatalf("Content-Type %q: %v", rec.Header().Get("Content-Type"), err)
	}
	mr := multipart.NewReader(rec.Body, second)
	for i, sib := range sibs {
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		b, _ := io.ReadAll(p)
		if !bytes.Equal(b, sib.Value) {
			t.Errorf("part %d = %q, want %q", i, b, sib.Value)
		}
	}
	if _, err := mr.NextRawPart(); err != io.EOF {
		t.Errorf("after the parts: %v, want EOF", err)
	}
}
