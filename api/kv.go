package api

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/versioning"
)

// HeaderContext carries the opaque causal context token.
const HeaderContext = client.HeaderContext

// HeaderDeleted marks a tombstone part in a multipart sibling response.
const HeaderDeleted = client.HeaderDeleted

const defaultContentType = "application/octet-stream"

// Query parameters each method accepts; anything else is a 400, so that a
// typo such as ?W=all is not silently ignored.
var (
	readParams  = map[string]bool{"r": true, "pr": true, "timeout": true, "repair": true}
	writeParams = map[string]bool{"w": true, "pw": true, "timeout": true}
)

// badRequest is a client error found while parsing a request.
type badRequest struct {
	status int
	code   string
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

func bad(code, format string, args ...any) *badRequest {
	return &badRequest{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

func writeBad(w http.ResponseWriter, e *badRequest) { writeError(w, e.status, e.code, e.msg) }

// parseKey percent-decodes the escaped path segment after the route prefix.
func parseKey(escaped string) ([]byte, *badRequest) {
	k, err := url.PathUnescape(escaped)
	if err != nil {
		return nil, bad(codeBadKey, "key is not validly percent-encoded: %v", err)
	}
	if k == "" {
		return nil, bad(codeBadKey, "empty key")
	}
	if len(k) > MaxKeyLen {
		return nil, bad(codeBadKey, "key is %d bytes, more than the limit of %d", len(k), MaxKeyLen)
	}
	return []byte(k), nil
}

// request holds the parsed, validated parts common to /kv/ requests.
type request struct {
	key     []byte
	timeout time.Duration
	vctx    versioning.VersionVector
	hasCtx  bool
	// keys sign the contexts of the answer (and verified vctx).
	keys *versioning.ContextKeys
	// Levels from the query; the zero Level is the configured default.
	r, pr, w, pw replica.Level
	// syncRepair: repair stale replicas before answering (repair=sync).
	syncRepair bool
}

func (s *Server) parseRequest(r *http.Request, escapedKey string, allowed map[string]bool) (request, *badRequest) {
	key, e := parseKey(escapedKey)
	if e != nil {
		return request{}, e
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return request{}, bad(codeBadParameter, "malformed query string: %v", err)
	}
	req := request{key: key, timeout: s.cfg.DefaultTimeout, keys: s.cfg.ContextKeys()}
	if req.keys == nil {
		return request{}, &badRequest{status: http.StatusServiceUnavailable, code: codeNotReady,
			msg: "this node does not know its cluster's secret yet, so it can neither sign nor verify a context"}
	}
	for name, vals := range q {
		if !allowed[name] {
			return request{}, bad(codeBadParameter, "unknown query parameter %q for %s", name, r.Method)
		}
		if len(vals) != 1 {
			return request{}, bad(codeBadParameter, "query parameter %q given %d times", name, len(vals))
		}
		val := vals[0]
		if name == "repair" {
			switch val {
			case "sync":
				req.syncRepair = true
			case "async":
			default:
				return request{}, bad(codeBadParameter, "parameter repair: %q: want sync or async", val)
			}
			continue
		}
		if name == "timeout" {
			d, err := parseTimeout(val)
			if err != nil {
				return request{}, bad(codeBadParameter, "parameter timeout: %v", err)
			}
			req.timeout = d
			continue
		}
		lvl, err := replica.ParseLevel(val, s.backend.N())
		if err != nil {
			return request{}, bad(codeBadParameter, "parameter %s: %v", name, err)
		}
		switch name {
		case "r":
			req.r = lvl
		case "pr":
			req.pr = lvl
		case "w":
			req.w = lvl
		case "pw":
			req.pw = lvl
		}
	}
	if vals := r.Header.Values(HeaderContext); len(vals) > 0 {
		if len(vals) > 1 {
			return request{}, bad(codeBadContext, "%s header given %d times", HeaderContext, len(vals))
		}
		// Verified here, on the node the client talks to, before anything
		// is forwarded or written (docs/design.md §4.8).
		vctx, err := req.keys.Open(key, vals[0])
		if err != nil {
			return request{}, contextError(err)
		}
		req.vctx, req.hasCtx = vctx, strings.TrimSpace(vals[0]) != ""
	}
	return req, nil
}

// contextError is the 400 of a context token that Open refused.
func contextError(err error) *badRequest {
	for _, e := range []error{versioning.ErrContextOtherKey, versioning.ErrContextNotSigned, versioning.ErrContextUnsigned} {
		if errors.Is(err, e) {
			return bad(codeBadContext, "%s: %v", HeaderContext, e)
		}
	}
	return bad(codeBadContext, "malformed %s: %v", HeaderContext, err)
}

// parseTimeout accepts milliseconds ("250") or a Go duration ("250ms").
func parseTimeout(s string) (time.Duration, error) {
	var d time.Duration
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms > int64(MaxTimeout/time.Millisecond) {
			return 0, fmt.Errorf("%q is above the limit of %v", s, MaxTimeout)
		}
		d = time.Duration(ms) * time.Millisecond
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%q is neither milliseconds nor a duration like 500ms", s)
	}
	if d <= 0 || d > MaxTimeout {
		return 0, fmt.Errorf("%q must be above 0 and at most %v", s, MaxTimeout)
	}
	return d, nil
}

func (s *Server) kv(w http.ResponseWriter, r *http.Request, escapedKey string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, r, escapedKey)
	case http.MethodPut:
		s.put(w, r, escapedKey)
	case http.MethodDelete:
		s.delete(w, r, escapedKey)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "method "+r.Method+" not allowed on /kv/{key}")
	}
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, escapedKey string) {
	req, e := s.parseRequest(r, escapedKey, writeParams)
	if e != nil {
		writeBad(w, e)
		return
	}
	if r.ContentLength > s.cfg.MaxValue {
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("value is %d bytes, more than the limit of %d", r.ContentLength, s.cfg.MaxValue))
		return
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = defaultContentType
	}
	if len(ct) > versioning.MaxContentTypeLen {
		writeError(w, http.StatusBadRequest, codeBadParameter, "Content-Type longer than 255 bytes")
		return
	}
	value, err := readBody(w, r, s.cfg.MaxValue)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge,
				fmt.Sprintf("value is more than the limit of %d bytes", s.cfg.MaxValue))
			return
		}
		writeError(w, http.StatusBadRequest, codeBadParameter, "read request body: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), req.timeout)
	defer cancel()
	newCtx, err := s.backend.Put(ctx, req.key, req.vctx,
		versioning.Sibling{Value: value, ContentType: ct},
		replica.WriteOptions{W: req.w, PW: req.pw})
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	w.Header().Set(HeaderContext, req.keys.Seal(req.key, newCtx))
	w.WriteHeader(http.StatusNoContent)
}

// readBody reads at most limit bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := r.Body
	if r.ContentLength < 0 || r.ContentLength > limit {
		// A declared length within the limit needs no MaxBytesReader:
		// exactly that much is read.
		body = http.MaxBytesReader(w, r.Body, limit)
	}
	if r.ContentLength < 0 {
		return io.ReadAll(body)
	}
	buf := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, err
	}
	// The declared length was read; anything more is a protocol error
	// net/http reports itself.
	return buf, nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, escapedKey string) {
	req, e := s.parseRequest(r, escapedKey, writeParams)
	if e != nil {
		writeBad(w, e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), req.timeout)
	defer cancel()
	vctx := req.vctx
	if !req.hasCtx {
		// Without a context, delete what a read sees now (as Riak does).
		// A concurrent write the read misses survives as a sibling.
		st, err := s.backend.Get(ctx, req.key, replica.ReadOptions{})
		if err != nil {
			s.requestError(w, r, "read before delete", err)
			return
		}
		if st.IsZero() {
			writeError(w, http.StatusNotFound, codeNotFound, "key not found")
			return
		}
		if st.Deleted() {
			w.Header().Set(HeaderContext, req.keys.Seal(req.key, st.Context))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		vctx = st.Context
	}
	newCtx, err := s.backend.Put(ctx, req.key, vctx, versioning.Sibling{Deleted: true},
		replica.WriteOptions{W: req.w, PW: req.pw})
	if err != nil {
		s.writeFailed(w, r, err)
		return
	}
	w.Header().Set(HeaderContext, req.keys.Seal(req.key, newCtx))
	w.WriteHeader(http.StatusNoContent)
}

// toJSON returns st as JSON, with its context token vctx.
func toJSON(st versioning.State, vctx string, withDots bool) client.ReadJSON {
	out := client.ReadJSON{Context: vctx, Siblings: make([]client.SiblingJSON, 0, len(st.Siblings))}
	for _, sib := range st.Siblings {
		js := client.SiblingJSON{Value: sib.Value, ContentType: sib.ContentType, Deleted: sib.Deleted}
		if js.Value == nil {
			js.Value = []byte{}
		}
		if withDots {
			js.Dot = sib.Dot.Actor + ":" + strconv.FormatUint(sib.Dot.Counter, 10)
		}
		out.Siblings = append(out.Siblings, js)
	}
	return out
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, escapedKey string) {
	req, e := s.parseRequest(r, escapedKey, readParams)
	if e != nil {
		writeBad(w, e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), req.timeout)
	defer cancel()
	st, err := s.backend.Get(ctx, req.key, replica.ReadOptions{R: req.r, PR: req.pr, SyncRepair: req.syncRepair})
	if err != nil {
		s.requestError(w, r, "read", err)
		return
	}
	if st.Deleted() {
		body := errorBody{Error: "key not found", Code: codeNotFound}
		if len(st.Context) > 0 { // tombstones: a write with this context replaces them
			body.Context = req.keys.Seal(req.key, st.Context)
			w.Header().Set(HeaderContext, body.Context)
		}
		writeJSON(w, http.StatusNotFound, body)
		return
	}
	vctx := req.keys.Seal(req.key, st.Context)
	w.Header().Set(HeaderContext, vctx)
	switch {
	case acceptsJSON(r.Header.Get("Accept")):
		writeJSON(w, http.StatusOK, toJSON(st, vctx, false))
	case len(st.Siblings) == 1:
		sib := st.Siblings[0]
		w.Header().Set("Content-Type", sib.ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(sib.Value)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(sib.Value)
	default:
		writeMultipart(w, st.Siblings)
	}
}

// acceptsJSON reports whether an Accept header asks for application/json.
func acceptsJSON(accept string) bool {
	for len(accept) > 0 {
		var part string
		part, accept, _ = strings.Cut(accept, ",")
		part = strings.TrimSpace(part)
		// The media type as mime.ParseMediaType finds it, so that other
		// types (*/*, say) skip its parsing of parameters into a map.
		base, _, hasParams := strings.Cut(part, ";")
		if strings.TrimSpace(strings.ToLower(base)) != "application/json" {
			continue
		}
		if !hasParams {
			return true
		}
		_, params, err := mime.ParseMediaType(part)
		if err != nil {
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

// writeMultipart answers 300 Multiple Choices with one part per sibling.
// The boundary is derived from the content, so the same state always gives
// the same bytes.
func writeMultipart(w http.ResponseWriter, sibs []versioning.Sibling) {
	boundary := multipartBoundary(sibs)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+boundary)
	w.WriteHeader(http.StatusMultipleChoices)
	mw := multipart.NewWriter(w)
	_ = mw.SetBoundary(boundary) // 22 characters from the allowed set
	for _, sib := range sibs {
		h := textproto.MIMEHeader{}
		if sib.Deleted {
			h.Set(HeaderDeleted, "true")
		} else {
			h.Set("Content-Type", sib.ContentType)
		}
		part, err := mw.CreatePart(h)
		if err != nil {
			return
		}
		_, _ = part.Write(sib.Value)
	}
	_ = mw.Close()
}

func multipartBoundary(sibs []versioning.Sibling) string {
	h := xxhash.New()
	for _, sib := range sibs {
		_, _ = h.WriteString(sib.Dot.Actor)
		_, _ = h.Write(strconv.AppendUint(nil, sib.Dot.Counter, 10))
	}
	for salt := 0; ; salt++ {
		_, _ = h.Write([]byte{byte(salt)})
		b := "dotkv-" + hex.EncodeToString(h.Sum(nil))
		clash := false
		for _, sib := range sibs {
			if bytes.Contains(sib.Value, []byte(b)) {
				clash = true
				break
			}
		}
		if !clash {
			return b
		}
	}
}

func (s *Server) debugReplica(w http.ResponseWriter, r *http.Request, escapedKey string) {
	if !readOnly(w, r, "/debug/replica/{key}") {
		return
	}
	key, e := parseKey(escapedKey)
	if e != nil {
		writeBad(w, e)
		return
	}
	if r.URL.RawQuery != "" {
		writeError(w, http.StatusBadRequest, codeBadParameter, "/debug/replica takes no query parameters")
		return
	}
	st, found, err := s.backend.LocalState(key)
	if err != nil {
		s.requestError(w, r, "read", err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, codeNotFound, "this node holds nothing for the key")
		return
	}
	var vctx string
	if keys := s.cfg.ContextKeys(); keys != nil {
		vctx = keys.Seal(key, st.Context)
	}
	writeJSON(w, http.StatusOK, toJSON(st, vctx, true))
}
