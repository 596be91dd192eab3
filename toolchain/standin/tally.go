package main

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// result is one request as the report counts it.
type result struct {
	status       int
	failed       bool
	class        string // the error class of a transport error
	version      string
	callVersions map[string]map[string]int
	latencyMS    float64
}

func newResult(o outcome) result {
	r := result{status: o.status, failed: o.failed(), latencyMS: ms(o.latency), callVersions: map[string]map[string]int{}}
	if o.err != nil {
		r.class = errorClass(o.err)
	}
	var body any
	if json.Unmarshal(o.body, &body) == nil {
		top, _ := body.(map[string]any)
		r.version, _ = top["version"].(string)
		countCallVersions(body, r.callVersions)
	}
	return r
}

// countCallVersions counts the versions of an answer's calls, at any depth, by service.
func countCallVersions(answer any, into map[string]map[string]int) {
	top, _ := answer.(map[string]any)
	calls, _ := top["calls"].([]any)
	for _, c := range calls {
		call, _ := c.(map[string]any)
		service, _ := call["service"].(string)
		version, _ := call["version"].(string)
		if service != "" && version != "" {
			addCount(into, service, version, 1)
		}
		countCallVersions(call["answer"], into)
	}
}

func addCount(into map[string]map[string]int, key, version string, n int) {
	if into[key] == nil {
		into[key] = map[string]int{}
	}
	into[key][version] += n
}

// tally is the numbers of one interval, or of the whole run.
type tally struct {
	Sent          int                       `json:"sent"`
	OK            int                       `json:"ok"`
	Failed        int                       `json:"failed"`
	ByStatus      map[string]int            `json:"by_status"`
	ByVersion     map[string]int            `json:"by_version"`
	ByCallVersion map[string]map[string]int `json:"by_call_version"`
	Errors        map[string]int            `json:"errors"`
	latencies     []float64
}

func newTally() tally {
	return tally{ByStatus: map[string]int{}, ByVersion: map[string]int{}, ByCallVersion: map[string]map[string]int{},
		Errors: map[string]int{}}
}

func (t *tally) add(r result) {
	if r.failed {
		t.Failed++
	} else {
		t.OK++
	}
	if r.status != 0 {
		t.ByStatus[strconv.Itoa(r.status)]++
	}
	if r.class != "" {
		t.Errors[r.class]++
	}
	if r.version != "" {
		t.ByVersion[r.version]++
	}
	for service, versions := range r.callVersions {
		for version, n := range versions {
			addCount(t.ByCallVersion, service, version, n)
		}
	}
	t.latencies = append(t.latencies, r.latencyMS)
}

// loadReport is one printed line.
type loadReport struct {
	T       float64 `json:"t"`
	Summary bool    `json:"summary,omitempty"`
	tally
	LatencyMS latencySummary `json:"latency_ms"`
}

type latencySummary struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(latencies []float64) latencySummary {
	sorted := slices.Sorted(slices.Values(latencies))
	return latencySummary{P50: percentile(sorted, 50), P90: percentile(sorted, 90), P99: percentile(sorted, 99),
		Max: percentile(sorted, 100)}
}

// percentile is the nearest-rank percentile of sorted values; 0 when there are none.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// recorder keeps the current interval's tally and the run's, for the workers and the reporter.
type recorder struct {
	mu       sync.Mutex
	interval tally
	total    tally
}

func newRecorder() *recorder {
	return &recorder{interval: newTally(), total: newTally()}
}

func (r *recorder) sent() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.interval.Sent++
	r.total.Sent++
}

func (r *recorder) add(res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.interval.add(res)
	r.total.add(res)
}

// report is the run's totals for the summary, else the interval's, which then starts over.
func (r *recorder) report(now time.Time, summary bool) loadReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.total
	if !summary {
		t, r.interval = r.interval, newTally()
	}
	return loadReport{T: float64(now.UnixNano()) / 1e9, Summary: summary, tally: t, LatencyMS: summarize(t.latencies)}
}
