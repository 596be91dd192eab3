package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// decodedReport is a printed line as a test reads it.
type decodedReport struct {
	T             float64                   `json:"t"`
	Summary       bool                      `json:"summary"`
	Sent          int                       `json:"sent"`
	OK            int                       `json:"ok"`
	Failed        int                       `json:"failed"`
	ByStatus      map[string]int            `json:"by_status"`
	ByVersion     map[string]int            `json:"by_version"`
	ByCallVersion map[string]map[string]int `json:"by_call_version"`
	Errors        map[string]int            `json:"errors"`
	LatencyMS     map[string]float64        `json:"latency_ms"`
}

func runLoadLines(t *testing.T, o loadOptions, stdin io.Reader) []decodedReport {
	t.Helper()
	var out strings.Builder
	runLoad(context.Background(), o, stdin, &out)
	var lines []decodedReport
	scanner := bufio.NewScanner(strings.NewReader(out.String()))
	for scanner.Scan() {
		var r decodedReport
		if err := json.Unmarshal(scanner.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, scanner.Text())
		}
		lines = append(lines, r)
	}
	if len(lines) < 2 || !lines[len(lines)-1].Summary {
		t.Fatalf("want interval lines then a summary, got:\n%s", out.String())
	}
	return lines
}

func options(url string) loadOptions {
	return loadOptions{url: url, header: http.Header{}, concurrency: 4, interval: time.Hour, timeout: 5 * time.Second}
}

func TestLoadCountsVersionsFailuresAndLatencies(t *testing.T) {
	var n atomic.Int32
	var gotHost, gotUser atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		gotUser.Store(r.Header.Get("End-User"))
		i := n.Add(1)
		status, version, reviews := 200, "v1", "v2"
		if i%4 == 0 {
			status, reviews = 500, "v3"
		}
		writeJSON(w, status, map[string]any{"version": version, "calls": []any{
			map[string]any{"service": "details", "version": "v1"},
			map[string]any{"service": "reviews", "version": reviews, "answer": map[string]any{
				"calls": []any{map[string]any{"service": "ratings", "version": "v1"}}}},
		}})
	}))
	defer srv.Close()
	o := options(srv.URL + "/productpage")
	o.n = 20
	o.header.Set("End-User", "jason")
	o.header.Set("Host", "bookinfo.example")
	lines := runLoadLines(t, o, nil)
	s := lines[len(lines)-1]
	if s.Sent != 20 || s.OK != 15 || s.Failed != 5 || s.ByStatus["200"] != 15 || s.ByStatus["500"] != 5 ||
		s.ByVersion["v1"] != 20 || len(s.Errors) != 0 {
		t.Errorf("summary %+v", s)
	}
	want := map[string]map[string]int{"details": {"v1": 20}, "reviews": {"v2": 15, "v3": 5}, "ratings": {"v1": 20}}
	for service, versions := range want {
		for version, count := range versions {
			if s.ByCallVersion[service][version] != count {
				t.Errorf("by_call_version %v, want %v", s.ByCallVersion, want)
			}
		}
	}
	if l := s.LatencyMS; l["max"] <= 0 || l["p50"] > l["p90"] || l["p90"] > l["p99"] || l["p99"] > l["max"] {
		t.Errorf("latencies %v", l)
	}
	interval := lines[len(lines)-2]
	if interval.Summary || interval.Sent != 20 || interval.Failed != 5 || interval.T != s.T {
		t.Errorf("last interval %+v", interval)
	}
	if gotHost.Load() != "bookinfo.example" || gotUser.Load() != "jason" {
		t.Errorf("server saw Host %v, end-user %v", gotHost.Load(), gotUser.Load())
	}
}

func TestLoadReportsEveryIntervalAndTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	o := options(url)
	o.duration, o.qps, o.interval = 300*time.Millisecond, 50, 100*time.Millisecond
	lines := runLoadLines(t, o, nil)
	s := lines[len(lines)-1]
	if len(lines) < 3 || s.Failed != s.Sent || s.Sent < 5 || s.Sent > 20 || s.Errors["connection refused"] != s.Sent {
		t.Errorf("%d lines, summary %+v", len(lines), s)
	}
	total := 0
	for _, line := range lines[:len(lines)-1] {
		total += line.Sent
	}
	if total != s.Sent {
		t.Errorf("intervals sent %d in all, summary says %d", total, s.Sent)
	}
}

func TestLoadStopsAtStdinEOF(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	stdin, closeStdin := io.Pipe()
	o := options(srv.URL)
	o.stopOnEOF, o.qps = true, 100
	time.AfterFunc(200*time.Millisecond, func() { _ = closeStdin.Close() })
	start := time.Now()
	s := runLoadLines(t, o, stdin)
	if elapsed := time.Since(start); elapsed > 5*time.Second || s[len(s)-1].OK == 0 {
		t.Errorf("stopped after %v with summary %+v", elapsed, s[len(s)-1])
	}
}

func TestPercentile(t *testing.T) {
	var values []float64
	for i := 100; i >= 1; i-- {
		values = append(values, float64(i))
	}
	got := summarize(values)
	if got != (latencySummary{P50: 50, P90: 90, P99: 99, Max: 100}) {
		t.Errorf("summarize(1..100) = %+v", got)
	}
	if got := summarize([]float64{7}); got != (latencySummary{P50: 7, P90: 7, P99: 7, Max: 7}) {
		t.Errorf("summarize(7) = %+v", got)
	}
	if got := summarize(nil); got != (latencySummary{}) {
		t.Errorf("summarize() = %+v", got)
	}
}

func TestLoadFlags(t *testing.T) {
	o, err := parseLoadFlags([]string{"--url", "http://productpage:9080/", "--header", "end-user: jason",
		"--header", "Cookie: a=b", "--n", "7", "--qps", "2.5", "--stop-on-eof"}, io.Discard)
	if err != nil || o.n != 7 || o.qps != 2.5 || !o.stopOnEOF || o.concurrency != 4 || o.interval != time.Second ||
		o.timeout != 15*time.Second || o.header.Get("End-User") != "jason" || o.header.Get("Cookie") != "a=b" {
		t.Errorf("parseLoadFlags = %+v, %v", o, err)
	}
	for _, args := range [][]string{
		{"--n", "1"},
		{"--url", "productpage:9080", "--n", "1"},
		{"--url", "http://productpage:9080/"},
		{"--url", "http://productpage:9080/", "--n", "1", "--header", "no colon"},
		{"--url", "http://productpage:9080/", "--n", "1", "--concurrency", "0"},
	} {
		if _, err := parseLoadFlags(args, io.Discard); err == nil {
			t.Errorf("parseLoadFlags(%q) accepted", args)
		}
	}
}

func TestFetch(t *testing.T) {
	f := newFleet(t)
	srv := f.start("details-v1-6c8d9e7f5-bbbbb", map[string]string{"STANDIN_SERVICE": "details"})
	var out strings.Builder
	code := run([]string{"standin", "fetch", "--url", srv.URL + "/details/0", "--header", "x-request-id: r-9"},
		nil, &out, io.Discard)
	var got struct {
		Status  int               `json:"status"`
		Error   string            `json:"error"`
		Headers map[string]string `json:"headers"`
		Body    decoded           `json:"body"`
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil || code != 0 {
		t.Fatalf("exit %d, %v: %s", code, err, out.String())
	}
	if got.Status != 200 || got.Error != "" || got.Headers["content-type"] != "application/json; charset=utf-8" ||
		got.Body.Version != "v1" || got.Body.Headers["x-request-id"] != "r-9" {
		t.Errorf("fetch printed %+v", got)
	}

	out.Reset()
	srv.Close()
	if code := run([]string{"standin", "fetch", "--url", srv.URL}, nil, &out, io.Discard); code != 0 ||
		!strings.Contains(out.String(), "connection refused") || !strings.Contains(out.String(), `"status":0`) {
		t.Errorf("fetch of a closed port exited %d, printed %s", code, out.String())
	}
}
