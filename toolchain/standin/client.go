package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// maxBody bounds what is read of an answer: a nested Bookinfo answer is a few kilobytes, but fetch also
// reads Envoy's config dumps.
const maxBody = 64 << 20

// outcome is one HTTP exchange as the callers here need it.
type outcome struct {
	status  int // 0 when no response came back
	header  http.Header
	body    []byte
	err     error
	latency time.Duration
}

// newTransport ignores proxy variables: requests go straight to their address, that is through the sidecar.
func newTransport(idlePerHost int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = idlePerHost
	return t
}

// newRequest makes a GET with the given header fields; a Host field becomes the request's Host, since Go
// sends that rather than the field.
func newRequest(ctx context.Context, url string, header http.Header) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header = header.Clone()
	if host := header.Get("Host"); host != "" {
		req.Host = host
	}
	return req, nil
}

func do(client *http.Client, req *http.Request) outcome {
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: err, latency: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return outcome{status: resp.StatusCode, header: resp.Header, body: body, err: err, latency: time.Since(start)}
}

// failed is the failure every caller here counts: a transport error or a server error.
func (o outcome) failed() bool {
	return o.err != nil || o.status >= 500
}

// decodeBody is a body as it goes into a JSON report: nested as JSON when it is JSON, else as a string.
func decodeBody(body []byte) any {
	switch {
	case len(body) == 0:
		return nil
	case json.Valid(body):
		return json.RawMessage(body)
	}
	return string(body)
}

// errorClass names a transport error briefly and without addresses, so that counts add up across requests.
func errorClass(err error) string {
	var netErr net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "no such host"
	case errors.As(err, &dnsErr):
		return "dns error"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	}
	for inner := errors.Unwrap(err); inner != nil; inner = errors.Unwrap(err) {
		err = inner
	}
	return err.Error()
}

// headerFlag is a repeatable --header 'Name: value'.
type headerFlag http.Header

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("want 'Name: value', got %q", v)
	}
	http.Header(h).Add(name, strings.TrimSpace(value))
	return nil
}

// flatHeader is a header as a JSON object: lower case names, repeated fields joined as HTTP allows.
func flatHeader(h http.Header) map[string]string {
	flat := make(map[string]string, len(h))
	for name, values := range h {
		flat[strings.ToLower(name)] = strings.Join(values, ", ")
	}
	return flat
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
