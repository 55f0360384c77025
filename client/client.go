package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Client. Start from DefaultConfig.
type Config struct {
	// Endpoints are the base URLs of the nodes to send requests to
	// ("http://10.0.0.1:8080"; "host:port" means http://host:port). Each
	// request starts at the next one in turn and fails over to the
	// others. A client without endpoints serves only requests with Via.
	Endpoints []string
	// InOrder makes every request try the endpoints in the order given
	// (those in their cooldown last), so that the first one serves every
	// request while it can, instead of starting at the next one in turn.
	InOrder bool
	// HTTPClient sends the requests; nil: a client of the Client's own
	// (with TLS, no proxy). Its Timeout, if any, bounds each attempt on a
	// node.
	HTTPClient *http.Client
	// TLS is the TLS configuration for https:// endpoints (RootCAs: the
	// cluster's CA) of the client's own HTTPClient; give it in the
	// transport of an HTTPClient instead.
	TLS *tls.Config
	// Token, if not empty, is sent as "Authorization: Bearer <token>"
	// with every request (nodes with access control).
	Token string
	// Timeout is each request's timeout on the node (the timeout
	// parameter, at most 60 s), unless the request sets one (Timeout); 0
	// sends none: the node's default, 1 s.
	Timeout time.Duration
	// Grace is how much longer than the request's timeout the client waits
	// for a node's answer before it gives up on that node (an outcome
	// unknown). Without a timeout it waits 60 s plus Grace. 0: 5 s.
	Grace time.Duration
	// Cooldown is how long an endpoint that refused a request is tried
	// only after the others. 0: 1 s.
	Cooldown time.Duration
}

// Defaults of Config's zero fields.
const (
	DefaultGrace    = 5 * time.Second
	DefaultCooldown = time.Second
)

// DefaultConfig returns the defaults: the node's timeout (1 s), a grace
// of 5 s and a cooldown of 1 s, each request starting at the next
// endpoint. Endpoints are left to the caller.
func DefaultConfig() Config {
	return Config{Grace: DefaultGrace, Cooldown: DefaultCooldown}
}

// maxTimeout is the longest timeout a node accepts (api.MaxTimeout).
const maxTimeout = 60 * time.Second

// Validate reports a configuration a Client cannot work with.
func (c Config) Validate() error {
	var errs []error
	for _, e := range c.Endpoints {
		if _, err := normalize(e); err != nil {
			errs = append(errs, err)
		}
	}
	if c.HTTPClient != nil && c.TLS != nil {
		errs = append(errs, errors.New("TLS and HTTPClient: give the TLS configuration in the HTTPClient's transport"))
	}
	if c.Timeout < 0 || c.Timeout > maxTimeout {
		errs = append(errs, fmt.Errorf("timeout %v: want 0..%v", c.Timeout, maxTimeout))
	}
	if c.Grace < 0 {
		errs = append(errs, fmt.Errorf("grace %v: want ≥ 0", c.Grace))
	}
	if c.Cooldown < 0 {
		errs = append(errs, fmt.Errorf("cooldown %v: want ≥ 0", c.Cooldown))
	}
	if strings.ContainsAny(c.Token, "\r\n") {
		errs = append(errs, errors.New("token holds a line break"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dotkv client config: %w", err)
	}
	return nil
}

// normalize turns an endpoint into a base URL: a scheme (http:// if none)
// and no trailing slash.
func normalize(e string) (string, error) {
	s := strings.TrimSpace(e)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	s = strings.TrimRight(s, "/")
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("endpoint %q: %w", e, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("endpoint %q: scheme %q, want http or https", e, u.Scheme)
	case u.Host == "":
		return "", fmt.Errorf("endpoint %q: no host", e)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("endpoint %q: want a base URL (no user, query or fragment)", e)
	}
	return s, nil
}

// Client sends requests to a dotkv cluster through a list of endpoints,
// failing over from one that refuses a request to the next. It is safe
// for concurrent use.
//
// A request goes to one endpoint after the other, starting at the next
// one in turn, endpoints that refused a request within Config.Cooldown
// last. It moves on to the next endpoint when one refuses it — the
// connection fails (refused, no route, TLS) or the node answers that it
// does not serve (503 not_ready, shutting_down) — since such a node
// processed nothing. When the outcome on one endpoint is unknown (a 504,
// a 500, the connection lost after the request was sent), it moves on
// only if the request is idempotent: reads, and writes with Idempotent.
// Any other answer is final.
type Client struct {
	cfg   Config
	hc    *http.Client
	auth  string // the Authorization header ("": none)
	eps   atomic.Pointer[[]*endpoint]
	epsMu sync.Mutex // serialises SetEndpoints
	next  atomic.Uint64
}

// endpoint is one node the client sends to.
type endpoint struct {
	url string
	// downUntil: the endpoint refused a request; until then (Unix ns) it
	// is tried after the others.
	downUntil atomic.Int64
}

// New returns a client for cfg (zero Grace and Cooldown take their
// defaults). Close its idle connections (CloseIdleConnections) when done.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = DefaultCooldown
	}
	c := &Client{cfg: cfg, hc: cfg.HTTPClient}
	if c.hc == nil {
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     cfg.TLS.Clone(),
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if cfg.Token != "" {
		c.auth = "Bearer " + cfg.Token
	}
	if err := c.SetEndpoints(cfg.Endpoints); err != nil {
		return nil, err
	}
	// Clients started together begin at different endpoints.
	c.next.Store(rand.Uint64())
	return c, nil
}

// SetEndpoints replaces the client's endpoints (base URLs, as in
// Config.Endpoints). Requests under way finish on the old ones.
func (c *Client) SetEndpoints(endpoints []string) error {
	c.epsMu.Lock()
	defer c.epsMu.Unlock()
	old := map[string]*endpoint{}
	if p := c.eps.Load(); p != nil {
		for _, e := range *p {
			old[e.url] = e
		}
	}
	eps := make([]*endpoint, 0, len(endpoints))
	seen := map[string]bool{}
	for _, s := range endpoints {
		u, err := normalize(s)
		if err != nil {
			return fmt.Errorf("dotkv client: %w", err)
		}
		if seen[u] {
			continue
		}
		seen[u] = true
		e := old[u]
		if e == nil {
			e = &endpoint{url: u}
		}
		eps = append(eps, e)
	}
	c.eps.Store(&eps)
	return nil
}

// Endpoints returns the client's endpoints, as base URLs.
func (c *Client) Endpoints() []string {
	eps := *c.eps.Load()
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.url
	}
	return out
}

// CloseIdleConnections closes the idle connections of the client's
// HTTPClient.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// request is one API call.
type request struct {
	method string
	// path is the escaped path ("/kv/a%2Fb"); key the key of a /kv/ path.
	path, key string
	query     url.Values
	header    http.Header
	body      []byte
	// ok lists the statuses that are a success.
	ok         []int
	idempotent bool
	timeout    time.Duration // the request's timeout on the node
	via        string
}

// response is a successful answer, read whole.
type response struct {
	endpoint string
	status   int
	header   http.Header
	body     []byte
}

// order returns the endpoints a request tries, in order.
func (c *Client) order(via string) ([]*endpoint, error) {
	if via != "" {
		u, err := normalize(via)
		if err != nil {
			return nil, fmt.Errorf("dotkv client: Via: %w", err)
		}
		return []*endpoint{c.lookup(u)}, nil
	}
	eps := *c.eps.Load()
	n := len(eps)
	if n == 0 {
		return nil, ErrNoEndpoints
	}
	start := 0
	if !c.cfg.InOrder {
		start = int(c.next.Add(1) % uint64(n))
	}
	now := time.Now().UnixNano()
	out := make([]*endpoint, 0, n)
	var down []*endpoint
	for i := range n {
		e := eps[(start+i)%n]
		if e.downUntil.Load() > now {
			down = append(down, e)
		} else {
			out = append(out, e)
		}
	}
	// Endpoints in their cooldown go last.
	return append(out, down...), nil
}

// lookup returns the client's endpoint u, or a new one (Via).
func (c *Client) lookup(u string) *endpoint {
	for _, e := range *c.eps.Load() {
		if e.url == u {
			return e
		}
	}
	return &endpoint{url: u}
}

// do sends rq to one endpoint after the other until one answers it (see
// Client) and returns the answer, or the error of the last answer.
func (c *Client) do(ctx context.Context, rq *request) (*response, error) {
	eps, err := c.order(rq.via)
	if err != nil {
		return nil, err
	}
	if rq.timeout == 0 {
		rq.timeout = c.cfg.Timeout
	}
	if rq.timeout > 0 {
		if rq.query == nil {
			rq.query = url.Values{}
		}
		ms := (rq.timeout + time.Millisecond - 1) / time.Millisecond
		rq.query.Set("timeout", strconv.FormatInt(int64(ms), 10))
	}
	var refused []*RefusedError
	var unknown error // the last outcome-unknown error: it must be the one returned
	for _, e := range eps {
		if ctx.Err() != nil {
			break
		}
		resp, err := c.attempt(ctx, e, rq)
		if err == nil {
			e.downUntil.Store(0)
			return resp, nil
		}
		var ref *RefusedError
		if errors.As(err, &ref) {
			e.downUntil.Store(time.Now().Add(c.cfg.Cooldown).UnixNano())
			refused = append(refused, ref)
			continue
		}
		if _, ok := err.(*OutcomeUnknownError); ok && rq.idempotent {
			unknown = err
			continue
		}
		if unknown != nil && rq.method != http.MethodGet {
			// An earlier attempt may have written: this answer does not
			// say that nothing was.
			return nil, unknown
		}
		return nil, err
	}
	switch {
	case unknown != nil:
		return nil, unknown
	case len(refused) > 0:
		return nil, &UnreachableError{Method: rq.method, Key: rq.what(), Attempts: refused}
	}
	return nil, fmt.Errorf("dotkv: %s %s: %w", rq.method, rq.what(), ctx.Err())
}

// what names the request's object: its key, or its path.
func (rq *request) what() string {
	if rq.key != "" {
		return rq.key
	}
	return rq.path
}

// maxErrorBody bounds the error bodies read.
const maxErrorBody = 64 << 10

// attempt sends rq to e. It returns a *RefusedError if e did not process
// the request, an *OutcomeUnknownError if it may have, and the error of
// any other answer that is not a success.
func (c *Client) attempt(ctx context.Context, e *endpoint, rq *request) (*response, error) {
	wait := rq.timeout
	if wait <= 0 {
		wait = maxTimeout
	}
	actx, cancel := context.WithTimeout(ctx, wait+c.cfg.Grace)
	defer cancel()
	// Until the transport has a connection, not a byte of the request
	// has been sent.
	var gotConn atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }})
	u := e.url + rq.path
	if len(rq.query) > 0 {
		u += "?" + rq.query.Encode()
	}
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(actx, rq.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("dotkv: %s %s: %w", rq.method, rq.what(), err)
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	base := ErrorResponse{Method: rq.method, Path: rq.path, Key: rq.key, Endpoint: e.url}
	resp, err := c.hc.Do(req)
	if err != nil {
		if !gotConn.Load() || isDialError(err) {
			return nil, &RefusedError{Endpoint: e.url, Err: unwrapURLError(err)}
		}
		return nil, &OutcomeUnknownError{ErrorResponse: base, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	base.Status = resp.StatusCode
	if slices.Contains(rq.ok, resp.StatusCode) {
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			base.Status = 0 // no whole answer
			return nil, &OutcomeUnknownError{ErrorResponse: base, Err: fmt.Errorf("read the %d answer: %w", resp.StatusCode, err)}
		}
		return &response{endpoint: e.url, status: resp.StatusCode, header: resp.Header, body: data}, nil
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	base.Body = decodeErrorBody(resp.Header.Get("Content-Type"), data)
	if base.Body.Context == "" {
		base.Body.Context = resp.Header.Get(HeaderContext)
	}
	err = errorFor(base)
	if u, ok := err.(*UnavailableError); ok && (u.Body.Code == CodeNotReady || u.Body.Code == CodeShuttingDown) {
		return nil, &RefusedError{Endpoint: e.url, Err: err}
	}
	return nil, err
}

// decodeErrorBody decodes an error answer's body: JSON, or its text.
func decodeErrorBody(contentType string, data []byte) ErrorBody {
	var b ErrorBody
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/json" || json.Valid(data) {
		if json.Unmarshal(data, &b) == nil && (b.Error != "" || b.Code != "") {
			return b
		}
	}
	return ErrorBody{Error: strings.TrimSpace(string(data))}
}

// isDialError reports whether err is a failure to connect: the request
// was sent nowhere. (The transport retries a request that failed on a
// reused connection with nothing written on a new one, so a dial error
// may come after a first connection was got.)
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// unwrapURLError returns the cause inside the *url.Error the HTTP client
// returns (which repeats the method and URL).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
