package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

type fetchReport struct {
	Status    int               `json:"status"`
	Error     string            `json:"error"`
	Headers   map[string]string `json:"headers"`
	Body      any               `json:"body"`
	LatencyMS float64           `json:"latency_ms"`
}

// fetchMain sends one request and prints it as one JSON line. Only a usage error exits non-zero: how the
// request fared is in the JSON.
func fetchMain(args []string, stdout, stderr io.Writer) int {
	header := http.Header{}
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "URL to request (required)")
	fs.Var(headerFlag(header), "header", "request header 'Name: value', repeatable")
	timeout := fs.Duration("timeout", 15*time.Second, "timeout of the request")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *target == "" || fs.NArg() > 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "usage: standin fetch --url URL [--header 'Name: value']... [--timeout D]")
		return 2
	}
	_ = json.NewEncoder(stdout).Encode(fetch(*target, header, *timeout))
	return 0
}

func fetch(target string, header http.Header, timeout time.Duration) fetchReport {
	client := &http.Client{Transport: newTransport(1), Timeout: timeout}
	req, err := newRequest(context.Background(), target, header)
	if err != nil {
		return fetchReport{Error: err.Error(), Headers: map[string]string{}}
	}
	o := do(client, req)
	r := fetchReport{Status: o.status, Headers: flatHeader(o.header), Body: decodeBody(o.body), LatencyMS: ms(o.latency)}
	if o.err != nil {
		r.Error = o.err.Error()
	}
	return r
}
