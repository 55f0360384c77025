package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
)

// Sibling is one version of a key's value. Concurrent writes leave
// several; a delete concurrent with a write leaves a tombstone (Deleted)
// next to the written value.
type Sibling struct {
	Value       []byte
	ContentType string
	// Deleted marks a tombstone: Value and ContentType are empty.
	Deleted bool
}

// Object is what a Get returns: every sibling of the key and the context
// token that a write back with Context replaces them with.
type Object struct {
	Key      string
	Context  string
	Siblings []Sibling
	// Endpoint is the base URL of the node that answered.
	Endpoint string
}

// Values returns the values of the siblings that are not tombstones.
func (o *Object) Values() [][]byte {
	var out [][]byte
	for _, s := range o.Siblings {
		if !s.Deleted {
			out = append(out, s.Value)
		}
	}
	return out
}

// JSON returns o in the JSON shape the node answers a GET with Accept:
// application/json.
func (o *Object) JSON() ReadJSON {
	out := ReadJSON{Context: o.Context, Siblings: make([]SiblingJSON, len(o.Siblings))}
	for i, s := range o.Siblings {
		v := s.Value
		if v == nil {
			v = []byte{}
		}
		out.Siblings[i] = SiblingJSON{Value: v, ContentType: s.ContentType, Deleted: s.Deleted}
	}
	return out
}

// WriteResult is what a Put or Delete returns.
type WriteResult struct {
	// Context is the context token of the version written: a later write
	// with it replaces this one.
	Context string
	// Endpoint is the base URL of the node that answered.
	Endpoint string
}

func (c *Client) options(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// kvPath is the escaped path of key.
func kvPath(key string) string { return "/kv/" + url.PathEscape(key) }

// setLevel sets the query parameter name to l, if l is set.
func setLevel(q url.Values, name string, l Level) {
	if l != "" {
		q.Set(name, string(l))
	}
}

// Get reads key: every sibling and the context to write back with. It
// takes R, PR, Timeout, SyncRepair and Via. A key that is absent or
// deleted is a *NotFoundError (with the tombstones' context, if any). A
// read is retried on the next endpoint whenever one fails.
func (c *Client) Get(ctx context.Context, key string, opts ...Option) (*Object, error) {
	o := c.options(opts)
	q := url.Values{}
	setLevel(q, "r", o.r)
	setLevel(q, "pr", o.pr)
	if o.syncRepair {
		q.Set("repair", "sync")
	}
	resp, err := c.do(ctx, &request{
		method: http.MethodGet, path: kvPath(key), key: key, query: q,
		ok: []int{http.StatusOK, http.StatusMultipleChoices}, idempotent: true, timeout: o.timeout, via: o.via,
	})
	if err != nil {
		return nil, err
	}
	obj := &Object{Key: key, Context: resp.header.Get(HeaderContext), Endpoint: resp.endpoint}
	if resp.status == http.StatusOK {
		obj.Siblings = []Sibling{{Value: resp.body, ContentType: resp.header.Get("Content-Type")}}
		return obj, nil
	}
	if obj.Siblings, err = parseSiblings(resp.header.Get("Content-Type"), resp.body); err != nil {
		return nil, fmt.Errorf("dotkv: GET %q at %s: 300 answer: %w", key, resp.endpoint, err)
	}
	return obj, nil
}

// parseSiblings decodes a 300 multipart/mixed answer.
func parseSiblings(contentType string, body []byte) ([]Sibling, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return nil, fmt.Errorf("Content-Type %q: want multipart/mixed with a boundary", contentType)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var sibs []Sibling
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return sibs, nil
		}
		if err != nil {
			return nil, err
		}
		v, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		s := Sibling{Value: v, ContentType: p.Header.Get("Content-Type")}
		if p.Header.Get(HeaderDeleted) == "true" {
			s = Sibling{Deleted: true}
		}
		sibs = append(sibs, s)
	}
}

// Put writes value to key. It takes Context (without it the write is
// blind: it adds a sibling), ContentType, W, PW, Timeout, Idempotent and
// Via.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...Option) (*WriteResult, error) {
	o := c.options(opts)
	h := http.Header{}
	if o.contentType != "" {
		h.Set("Content-Type", o.contentType)
	}
	if value == nil {
		value = []byte{}
	}
	return c.write(ctx, http.MethodPut, key, value, h, o)
}

// Delete deletes key: it writes a tombstone that replaces the siblings the
// Context option stands for, or (without it) those a read at the default
// level sees now. It takes Context, W, PW, Timeout, Idempotent and Via. A
// key that never existed is a *NotFoundError; deleting a deleted key
// writes nothing and returns its tombstones' context.
func (c *Client) Delete(ctx context.Context, key string, opts ...Option) (*WriteResult, error) {
	return c.write(ctx, http.MethodDelete, key, nil, http.Header{}, c.options(opts))
}

func (c *Client) write(ctx context.Context, method, key string, body []byte, h http.Header, o options) (*WriteResult, error) {
	if o.vctx != "" {
		h.Set(HeaderContext, o.vctx)
	}
	q := url.Values{}
	setLevel(q, "w", o.w)
	setLevel(q, "pw", o.pw)
	resp, err := c.do(ctx, &request{
		method: method, path: kvPath(key), key: key, query: q, header: h, body: body,
		ok: []int{http.StatusNoContent}, idempotent: o.idempotent, timeout: o.timeout, via: o.via,
	})
	if err != nil {
		return nil, err
	}
	return &WriteResult{Context: resp.header.Get(HeaderContext), Endpoint: resp.endpoint}, nil
}

// Resolve reads key, merges its siblings with merge, and writes the
// merged value back with the read's context, which replaces every sibling
// the read returned (siblings written since survive next to it). merge
// gets every sibling, tombstones included, and returns the value and its
// content type. A key with a single sibling is not written: Resolve
// returns its context. The options apply to the read (R, PR, SyncRepair)
// and the write (W, PW, Idempotent); Timeout and Via to both. An absent
// or deleted key is the read's *NotFoundError; an error of merge is
// returned as is, and nothing is written.
func (c *Client) Resolve(ctx context.Context, key string, merge func(siblings []Sibling) ([]byte, string, error), opts ...Option) (*WriteResult, error) {
	obj, err := c.Get(ctx, key, opts...)
	if err != nil {
		return nil, err
	}
	if len(obj.Siblings) == 1 && !obj.Siblings[0].Deleted {
		return &WriteResult{Context: obj.Context, Endpoint: obj.Endpoint}, nil
	}
	value, ct, err := merge(obj.Siblings)
	if err != nil {
		return nil, err
	}
	wopts := append(append([]Option(nil), opts...), Context(obj.Context), ContentType(ct))
	return c.Put(ctx, key, value, wopts...)
}
