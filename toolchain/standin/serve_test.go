package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fleet runs stand-ins on httptest servers; its resolver points their service names at them.
type fleet struct {
	t        *testing.T
	ports    map[string]int
	env      map[string]string // the Service variables the env fallback reads
	noDNS    map[string]bool   // names DNS does not know although the fleet runs them
	lookups  atomic.Int32
	resolver *resolver
}

func newFleet(t *testing.T) *fleet {
	f := &fleet{t: t, ports: map[string]int{}, env: map[string]string{}, noDNS: map[string]bool{}}
	f.resolver = newResolver(f.lookup, envOf(f.env))
	return f
}

func (f *fleet) lookup(_ context.Context, host string) ([]string, error) {
	f.lookups.Add(1)
	if _, ok := f.ports[host]; ok && !f.noDNS[host] {
		return []string{"127.0.0.1"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// call is a STANDIN_CALLS entry for a service the fleet runs.
func (f *fleet) call(service, rest string) string {
	return service + ":" + strconv.Itoa(f.ports[service]) + rest
}

// add serves h as the service.
func (f *fleet) add(service string, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	f.t.Cleanup(srv.Close)
	f.ports[service] = srv.Listener.Addr().(*net.TCPAddr).Port
	return srv
}

// start runs a stand-in configured by env as the given pod.
func (f *fleet) start(pod string, env map[string]string) *httptest.Server {
	cfg, err := loadConfig(envOf(env))
	if err != nil {
		f.t.Fatal(err)
	}
	return f.add(cfg.service, newServer(cfg, newIdentity(cfg, pod), f.resolver))
}

// bookinfo starts ratings, details, reviews (v2, black stars) and productpage, which calls details and
// reviews with the given rest of their STANDIN_CALLS entries.
func (f *fleet) bookinfo(reviewsEnv map[string]string) *httptest.Server {
	f.start("ratings-v1-5b9c7d8f6-aaaaa", map[string]string{"STANDIN_SERVICE": "ratings"})
	f.start("details-v1-6c8d9e7f5-bbbbb", map[string]string{"STANDIN_SERVICE": "details"})
	env := map[string]string{"STANDIN_SERVICE": "reviews", "STANDIN_STARS": "black",
		"STANDIN_CALLS": f.call("ratings", ":1s")}
	for k, v := range reviewsEnv {
		env[k] = v
	}
	f.start("reviews-v2-7d9f8c6b5-ccccc", env)
	return f.start("productpage-v1-8f7e6d5c4-ddddd", map[string]string{"STANDIN_SERVICE": "productpage",
		"STANDIN_CALLS": f.call("details", ":1s") + "," + f.call("reviews", ":2s")})
}

// decoded is an answer as a client reads it.
type decoded struct {
	Standin bool              `json:"standin"`
	Service string            `json:"service"`
	Version string            `json:"version"`
	Pod     string            `json:"pod"`
	Path    string            `json:"path"`
	Status  int               `json:"status"`
	User    string            `json:"user"`
	Stars   string            `json:"stars"`
	Ratings map[string]int    `json:"ratings"`
	Headers map[string]string `json:"headers"`
	Calls   []struct {
		Service  string   `json:"service"`
		URL      string   `json:"url"`
		Status   int      `json:"status"`
		Version  string   `json:"version"`
		Pod      string   `json:"pod"`
		Attempts int      `json:"attempts"`
		Error    string   `json:"error"`
		Resolved string   `json:"resolved"`
		Answer   *decoded `json:"answer"`
	} `json:"calls"`
}

// get sends the header fields given, and no User-Agent unless given.
func get(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header["User-Agent"] = []string{""}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func getJSON(t *testing.T, url string, header map[string]string) (int, decoded) {
	t.Helper()
	resp, body := get(t, url, header)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("Content-Type %q, body %s", ct, body)
	}
	var a decoded
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return resp.StatusCode, a
}

func TestFanOutPropagatesHeadersAndNestsVersions(t *testing.T) {
	f := newFleet(t)
	productpage := f.bookinfo(nil)
	status, a := getJSON(t, productpage.URL+"/productpage?format=json", map[string]string{
		"Cookie": "a=b; user=jason", "X-Request-Id": "req-1", "X-B3-Traceid": "trace-1", "User-Agent": "agent/1",
		"X-Unrelated": "no"})

	if status != 200 || !a.Standin || a.Status != 200 || a.Service != "productpage" || a.Version != "v1" ||
		a.Pod != "productpage-v1-8f7e6d5c4-ddddd" || a.Path != "/productpage" || a.User != "jason" {
		t.Errorf("productpage answered %d %+v", status, a)
	}
	if _, ok := a.Headers["end-user"]; ok || a.Headers["x-unrelated"] != "" {
		t.Errorf("productpage reports headers it did not get or does not propagate: %v", a.Headers)
	}
	if len(a.Calls) != 2 || a.Calls[0].Service != "details" || a.Calls[1].Service != "reviews" {
		t.Fatalf("calls %+v, want details then reviews", a.Calls)
	}
	details, reviews := a.Calls[0], a.Calls[1]
	if details.Version != "v1" || details.Status != 200 || details.Resolved != "dns" || details.Attempts != 1 ||
		details.URL != "http://details:"+strconv.Itoa(f.ports["details"])+"/details" {
		t.Errorf("details call %+v", details)
	}
	if reviews.Version != "v2" || reviews.Pod != "reviews-v2-7d9f8c6b5-ccccc" || reviews.Answer == nil ||
		reviews.Answer.Stars != "black" || reviews.Answer.Ratings["Reviewer1"] != 5 {
		t.Fatalf("reviews call %+v", reviews)
	}
	ratings := reviews.Answer.Calls[0]
	if ratings.Service != "ratings" || ratings.Version != "v1" || ratings.Answer == nil {
		t.Fatalf("ratings call %+v", ratings)
	}
	for _, downstream := range []*decoded{details.Answer, reviews.Answer, ratings.Answer} {
		want := map[string]string{"cookie": "a=b; user=jason", "end-user": "jason", "x-request-id": "req-1",
			"x-b3-traceid": "trace-1", "user-agent": "agent/1"}
		for k, v := range want {
			if downstream.Headers[k] != v {
				t.Errorf("%s got %s=%q, want %q (headers %v)", downstream.Service, k, downstream.Headers[k], v,
					downstream.Headers)
			}
		}
	}
}

func TestEndUserHeaderWinsOverCookie(t *testing.T) {
	f := newFleet(t)
	productpage := f.bookinfo(nil)
	_, a := getJSON(t, productpage.URL+"/", map[string]string{"Cookie": "user=jason", "End-User": "alice"})
	got := a.Calls[1].Answer.Headers
	if a.User != "alice" || got["end-user"] != "alice" {
		t.Errorf("user %q, reviews got end-user %q", a.User, got["end-user"])
	}
	if _, ok := got["user-agent"]; ok {
		t.Errorf("reviews got a user-agent nobody sent: %v", got)
	}
}

func TestRetriesAfterServerErrors(t *testing.T) {
	for _, c := range []struct {
		retries, failures, attempts int
		err                         string
	}{
		{retries: 1, failures: 1, attempts: 2},
		{retries: 0, failures: 1, attempts: 1, err: "status 503"},
		{retries: 2, failures: 5, attempts: 3, err: "status 503"},
	} {
		f := newFleet(t)
		ratings := newServer(config{service: "ratings"}, identity{service: "ratings", version: "v1"}, f.resolver)
		var hits atomic.Int32
		f.add("ratings", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hits.Add(1) <= int32(c.failures) {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			ratings.ServeHTTP(w, r)
		}))
		reviews := f.start("reviews-v3-1a2b3c4d5-eeeee", map[string]string{"STANDIN_SERVICE": "reviews",
			"STANDIN_STARS": "red", "STANDIN_CALLS": f.call("ratings", ":1s:"+strconv.Itoa(c.retries))})
		_, a := getJSON(t, reviews.URL+"/reviews/0", nil)
		call := a.Calls[0]
		if call.Attempts != c.attempts || call.Error != c.err || int(hits.Load()) != c.attempts {
			t.Errorf("%+v: call %+v after %d requests", c, call, hits.Load())
		}
		if gotRatings := a.Ratings != nil; gotRatings != (c.err == "") {
			t.Errorf("%+v: reviews reports ratings %v", c, a.Ratings)
		}
	}
}

func TestTimedOutReviewsShowBookinfoText(t *testing.T) {
	f := newFleet(t)
	f.start("details-v1-6c8d9e7f5-bbbbb", map[string]string{"STANDIN_SERVICE": "details"})
	f.start("reviews-v2-7d9f8c6b5-ccccc", map[string]string{"STANDIN_SERVICE": "reviews", "STANDIN_DELAY": "2s"})
	productpage := f.start("productpage-v1-8f7e6d5c4-ddddd", map[string]string{"STANDIN_SERVICE": "productpage",
		"STANDIN_CALLS": f.call("details", ":1s") + "," + f.call("reviews", ":50ms")})

	_, a := getJSON(t, productpage.URL+"/productpage", map[string]string{"Accept": "application/json"})
	if a.Status != 200 || a.Calls[1].Error != "timeout" || a.Calls[1].Status != 0 {
		t.Errorf("answer %d, reviews call %+v", a.Status, a.Calls[1])
	}
	resp, page := get(t, productpage.URL+"/productpage", nil)
	for _, want := range []string{"Sorry, product reviews are currently unavailable for this book.",
		`data-stars="none"`, "Details from details v1"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("page answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestPageShowsStarsOrRatingsUnavailable(t *testing.T) {
	f := newFleet(t)
	productpage := f.bookinfo(nil)
	_, page := get(t, productpage.URL+"/productpage", map[string]string{"Accept": "text/html"})
	for _, want := range []string{`<meta charset="utf-8">`, "meshkit stand-in for Bookinfo's productpage",
		"The Comedy of Errors", `id="reviews" data-version="v2" data-pod="reviews-v2-7d9f8c6b5-ccccc" data-stars="black"`,
		"Reviews from reviews v2, pod reviews-v2-7d9f8c6b5-ccccc",
		`Reviewer1: <span style="color: black">★★★★★</span>`, `Reviewer2: <span style="color: black">★★★★</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}

	f = newFleet(t)
	productpage = f.bookinfo(map[string]string{"STANDIN_STARS": "red", "STANDIN_CALLS": "ratings:1:1s"})
	_, page = get(t, productpage.URL+"/productpage", nil)
	if !strings.Contains(page, "Ratings service is currently unavailable") || strings.Contains(page, "★") ||
		!strings.Contains(page, `data-stars="red"`) {
		t.Errorf("page with ratings unavailable:\n%s", page)
	}
}

func TestFailPercent(t *testing.T) {
	f := newFleet(t)
	failing := f.start("reviews-v3-1a2b3c4d5-eeeee", map[string]string{"STANDIN_SERVICE": "reviews",
		"STANDIN_FAIL_PERCENT": "100"})
	status, a := getJSON(t, failing.URL+"/reviews/0", nil)
	if status != 500 || a.Status != 500 || !a.Standin || a.Version != "v3" {
		t.Errorf("FAIL_PERCENT=100 answered %d %+v", status, a)
	}
	productpage := f.start("productpage-v1-8f7e6d5c4-ddddd", map[string]string{"STANDIN_SERVICE": "productpage",
		"STANDIN_CALLS": f.call("reviews", ":1s:2"), "STANDIN_FAIL_PERCENT": "0"})
	status, a = getJSON(t, productpage.URL+"/productpage?format=json", nil)
	if status != 200 || a.Calls[0].Error != "status 500" || a.Calls[0].Attempts != 3 || a.Calls[0].Version != "v3" {
		t.Errorf("productpage answered %d, call %+v", status, a.Calls[0])
	}
}

func TestEnvFallbackWhenDNSFails(t *testing.T) {
	f := newFleet(t)
	f.start("my-details-v1-6c8d9e7f5-bbbbb", map[string]string{"STANDIN_SERVICE": "my-details"})
	f.noDNS["my-details"] = true
	f.env["MY_DETAILS_SERVICE_HOST"] = "127.0.0.1"
	productpage := f.start("productpage-v1-8f7e6d5c4-ddddd", map[string]string{"STANDIN_SERVICE": "productpage",
		"STANDIN_CALLS": f.call("my-details", ":1s") + ",nowhere:9080:1s"})
	for range 2 {
		_, a := getJSON(t, productpage.URL+"/", nil)
		if got := a.Calls[0]; got.Resolved != "env" || got.Status != 200 || got.Version != "v1" {
			t.Errorf("call %+v", got)
		}
		want := "cannot resolve nowhere: DNS lookup: no such host; NOWHERE_SERVICE_HOST is unset"
		if got := a.Calls[1]; got.Error != want || got.Resolved != "" || a.Status != 200 {
			t.Errorf("call %+v, want error %q", got, want)
		}
	}
	// my-details once, nowhere twice: a name the variable resolved skips DNS from then on.
	if n := f.lookups.Load(); n != 3 {
		t.Errorf("%d DNS lookups, want 3", n)
	}
}

func TestHealthzMakesNoCalls(t *testing.T) {
	f := newFleet(t)
	var hits atomic.Int32
	f.add("details", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	productpage := f.start("productpage-v1-8f7e6d5c4-ddddd", map[string]string{"STANDIN_SERVICE": "productpage",
		"STANDIN_CALLS": f.call("details", ""), "STANDIN_FAIL_PERCENT": "100"})
	resp, body := get(t, productpage.URL+"/healthz", nil)
	if resp.StatusCode != 200 || body != "ok" || hits.Load() != 0 {
		t.Errorf("healthz answered %d %q after %d calls", resp.StatusCode, body, hits.Load())
	}
}

func TestShutdownFinishesInFlightRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	started := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		_, _ = io.WriteString(w, "finished")
	})
	ctx, stop := context.WithCancel(context.Background())
	exited := make(chan int)
	go func() { exited <- serveUntil(ctx, ln, slow, io.Discard) }()
	answered := make(chan string)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			answered <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		answered <- string(body)
	}()
	<-started
	stop()
	if body := <-answered; body != "finished" {
		t.Errorf("in-flight request got %q", body)
	}
	if code := <-exited; code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("still accepting after shutdown")
	}
}

func TestLoginSetsTheUserCookieForThePage(t *testing.T) {
	f := newFleet(t)
	productpage := f.bookinfo(nil)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(productpage.URL + "/login?user=jason")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Request.URL.Path != "/productpage" || !strings.Contains(string(page), "Signed in as jason") {
		t.Fatalf("after /login: %s\n%s", resp.Request.URL, page)
	}
	resp, err = browser.Get(productpage.URL + "/logout")
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(page), "Signed in") {
		t.Errorf("still signed in after /logout:\n%s", page)
	}
}
