package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

type loadOptions struct {
	url         string
	header      http.Header
	n           int
	duration    time.Duration
	concurrency int
	qps         float64
	interval    time.Duration
	timeout     time.Duration
	stopOnEOF   bool
}

// loadMain sends requests until --n are sent, --duration ends, stdin ends (--stop-on-eof) or a signal
// comes, reporting as it goes. It exits 0 however the requests fared: the test judges the report.
func loadMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseLoadFlags(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "standin load: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	runLoad(ctx, o, stdin, stdout)
	return 0
}

func parseLoadFlags(args []string, stderr io.Writer) (loadOptions, error) {
	o := loadOptions{header: http.Header{}}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "", "URL to request (required)")
	fs.Var(headerFlag(o.header), "header", "request header 'Name: value', repeatable")
	fs.IntVar(&o.n, "n", 0, "number of requests")
	fs.DurationVar(&o.duration, "duration", 0, "how long to send requests")
	fs.IntVar(&o.concurrency, "concurrency", 4, "requests in flight at once")
	fs.Float64Var(&o.qps, "qps", 0, "requests per second over all workers; 0 is as fast as possible")
	fs.DurationVar(&o.interval, "interval", time.Second, "report interval")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Second, "timeout per request")
	fs.BoolVar(&o.stopOnEOF, "stop-on-eof", false, "also stop when stdin reaches EOF")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.n < 0, o.duration < 0, o.concurrency < 1, o.qps < 0, o.interval <= 0, o.timeout <= 0:
		return o, errors.New("--n, --duration and --qps must not be negative, --concurrency, --interval and --timeout must be positive")
	case o.n == 0 && o.duration == 0 && !o.stopOnEOF:
		return o, errors.New("give --n, --duration or --stop-on-eof, or load never stops by itself")
	}
	return o, checkURL(o.url)
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q is not an http(s) URL", raw)
	}
	return nil
}

func runLoad(ctx context.Context, o loadOptions, stdin io.Reader, out io.Writer) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.duration > 0 {
		var stopTimer context.CancelFunc
		ctx, stopTimer = context.WithTimeout(ctx, o.duration)
		defer stopTimer()
	}
	if o.stopOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	client := &http.Client{Transport: newTransport(o.concurrency), Timeout: o.timeout}
	rec := newRecorder()
	jobs := tokens(ctx, o.n, o.qps)
	var workers sync.WaitGroup
	for range o.concurrency {
		workers.Go(func() {
			for range jobs {
				rec.sent()
				rec.add(newResult(send(client, o)))
			}
		})
	}
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	printReports(out, rec, o.interval, done)
}

// send makes one request, outside load's ctx: a request in flight when load stops finishes and counts.
func send(client *http.Client, o loadOptions) outcome {
	req, err := newRequest(context.Background(), o.url, o.header)
	if err != nil {
		return outcome{err: err}
	}
	return do(client, req)
}

// printReports prints the interval's numbers every interval, and when done the last interval and the summary.
func printReports(out io.Writer, rec *recorder, interval time.Duration, done <-chan struct{}) {
	enc := json.NewEncoder(out)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case now := <-ticker.C:
			_ = enc.Encode(rec.report(now, false))
		case <-done:
			now := time.Now()
			_ = enc.Encode(rec.report(now, false))
			_ = enc.Encode(rec.report(now, true))
			return
		}
	}
}

// tokens hands out one token per request to send, at qps when set, until n are out (n > 0) or ctx ends.
func tokens(ctx context.Context, n int, qps float64) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		var tick <-chan time.Time
		if qps > 0 {
			ticker := time.NewTicker(time.Duration(float64(time.Second) / qps))
			defer ticker.Stop()
			tick = ticker.C
		}
		for i := 0; n == 0 || i < n; i++ {
			if tick != nil {
				select {
				case <-tick:
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}
