package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// propagated are the headers Bookinfo's services pass from each request to the calls it makes, so that
// Istio's routing on them (end-user) and its traces follow one request end to end.
var propagated = []string{
	"cookie", "end-user", "user-agent", "x-request-id",
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "x-ot-span-context",
	"traceparent", "tracestate", "x-cloud-trace-context", "grpc-trace-bin", "sw8",
}

// callResult is one call as the answer reports it.
type callResult struct {
	Service   string  `json:"service"`
	URL       string  `json:"url"`
	Status    int     `json:"status"`
	Version   string  `json:"version"`
	Pod       string  `json:"pod"`
	LatencyMS float64 `json:"latency_ms"`
	Attempts  int     `json:"attempts"`
	Error     string  `json:"error"`
	Resolved  string  `json:"resolved"`
	Answer    any     `json:"answer"`
	callee    calleeAnswer
}

// calleeAnswer is what this service reads of a callee's answer itself.
type calleeAnswer struct {
	Version string         `json:"version"`
	Pod     string         `json:"pod"`
	Stars   string         `json:"stars"`
	Ratings map[string]int `json:"ratings"`
}

// received is the propagated headers of a request, as the answer reports them.
func received(h http.Header) map[string]string {
	got := map[string]string{}
	for _, name := range propagated {
		if values := h.Values(name); len(values) > 0 {
			got[name] = strings.Join(values, ", ")
		}
	}
	return got
}

// endUser is the end-user header, else the user cookie a logged-in Bookinfo user carries.
func endUser(r *http.Request) string {
	if user := r.Header.Get("End-User"); user != "" {
		return user
	}
	if cookie, err := r.Cookie("user"); err == nil {
		return cookie.Value
	}
	return ""
}

// outbound is the header every call of a request carries: the propagated ones unchanged, plus end-user
// for a logged-in user, as Bookinfo's productpage adds it.
func outbound(r *http.Request, user string) http.Header {
	// An empty User-Agent keeps Go from adding its own: only the caller's is passed on.
	h := http.Header{"User-Agent": {""}}
	for _, name := range propagated {
		if values := r.Header.Values(name); len(values) > 0 {
			h[http.CanonicalHeaderKey(name)] = slices.Clone(values)
		}
	}
	if user != "" && h.Get("End-User") == "" {
		h.Set("End-User", user)
	}
	return h
}

// resolver finds a Service's address: DNS first, else the <NAME>_SERVICE_HOST variable Kubernetes sets.
type resolver struct {
	lookup func(ctx context.Context, host string) ([]string, error)
	getenv func(string) string

	mu sync.Mutex
	// envHosts holds the names DNS failed for and their variable's address. They skip DNS from then on: a
	// cluster without DNS would otherwise pay a lookup timeout on every call, and a Service's ClusterIP is
	// fixed for its life.
	envHosts map[string]string
}

func newResolver(lookup func(context.Context, string) ([]string, error), getenv func(string) string) *resolver {
	return &resolver{lookup: lookup, getenv: getenv, envHosts: map[string]string{}}
}

// resolve returns the address and how it was found, "dns" or "env".
func (r *resolver) resolve(ctx context.Context, name string) (string, string, error) {
	r.mu.Lock()
	host, known := r.envHosts[name]
	r.mu.Unlock()
	if known {
		return host, "env", nil
	}
	addrs, err := r.lookup(ctx, name)
	if err == nil && len(addrs) > 0 {
		return addrs[0], "dns", nil
	}
	variable := strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_SERVICE_HOST"
	if host = r.getenv(variable); host == "" {
		why := "no address"
		if err != nil {
			why = errorClass(err)
		}
		return "", "", fmt.Errorf("cannot resolve %s: DNS lookup: %s; %s is unset", name, why, variable)
	}
	r.mu.Lock()
	r.envHosts[name] = host
	r.mu.Unlock()
	return host, "env", nil
}

// call makes one configured call, with its retries.
func (s *server) call(ctx context.Context, c callSpec, h http.Header) callResult {
	start := time.Now()
	result := callResult{Service: c.name, URL: c.url()}
	resolveCtx, cancel := context.WithTimeout(ctx, c.timeout)
	addr, how, err := s.resolver.resolve(resolveCtx, c.name)
	cancel()
	result.Resolved = how
	if err != nil {
		result.Error = err.Error()
	} else {
		s.attempts(ctx, c, addr, h, &result)
	}
	result.LatencyMS = ms(time.Since(start))
	return result
}

// attempts tries once, then again while the call fails and retries remain.
func (s *server) attempts(ctx context.Context, c callSpec, addr string, h http.Header, result *callResult) {
	for result.Attempts = 1; ; result.Attempts++ {
		o := s.attempt(ctx, c, addr, h)
		result.Status, result.Error = o.status, ""
		switch {
		case o.err != nil:
			result.Error = errorClass(o.err)
		case o.status >= 500:
			result.Error = fmt.Sprintf("status %d", o.status)
		}
		result.setAnswer(o.body)
		if !o.failed() || result.Attempts > c.retries || ctx.Err() != nil {
			return
		}
	}
}

// attempt sends to the resolved address with the Service's name as Host, which the sidecar routes by.
func (s *server) attempt(ctx context.Context, c callSpec, addr string, h http.Header) outcome {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := newRequest(ctx, "http://"+net.JoinHostPort(addr, strconv.Itoa(c.port))+"/"+c.name, h)
	if err != nil {
		return outcome{err: err}
	}
	req.Host = c.hostPort()
	return do(s.client, req)
}

func (r *callResult) setAnswer(body []byte) {
	r.Answer = decodeBody(body)
	r.callee = calleeAnswer{}
	if raw, ok := r.Answer.(json.RawMessage); ok {
		// JSON of another shape (not a stand-in answering) just leaves the fields empty.
		_ = json.Unmarshal(raw, &r.callee)
	}
	r.Version, r.Pod = r.callee.Version, r.callee.Pod
}
