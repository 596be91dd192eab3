package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// shutdownGrace is how long in-flight requests may take to finish after SIGTERM.
const shutdownGrace = 5 * time.Second

// bookinfoRatings are the two ratings Bookinfo's ratings service gives its one book.
var bookinfoRatings = map[string]int{"Reviewer1": 5, "Reviewer2": 4}

// answer is the JSON every request gets.
type answer struct {
	Standin   bool              `json:"standin"`
	Service   string            `json:"service"`
	Version   string            `json:"version"`
	Pod       string            `json:"pod"`
	Path      string            `json:"path"`
	Status    int               `json:"status"`
	User      string            `json:"user"`
	Stars     string            `json:"stars"`
	Ratings   map[string]int    `json:"ratings,omitempty"`
	Headers   map[string]string `json:"headers"`
	Calls     []callResult      `json:"calls"`
	LatencyMS float64           `json:"latency_ms"`
}

type server struct {
	cfg      config
	id       identity
	resolver *resolver
	client   *http.Client
}

func newServer(cfg config, id identity, res *resolver) *server {
	return &server{cfg: cfg, id: id, resolver: res, client: &http.Client{Transport: newTransport(16)}}
}

func serveMain(args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "standin serve takes no arguments: it reads STANDIN_* variables")
		return 2
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "standin: %v\n", err)
		return 2
	}
	pod, err := os.Hostname()
	if err != nil {
		fmt.Fprintf(stderr, "standin: %v\n", err)
		return 1
	}
	id := newIdentity(cfg, pod)
	s := newServer(cfg, id, newResolver(net.DefaultResolver.LookupHost, getenv))
	ln, err := net.Listen("tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(cfg.port)))
	if err != nil {
		fmt.Fprintf(stderr, "standin: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "standin: %s %s (pod %s) on port %d, calls %q\n",
		id.service, id.version, id.pod, cfg.port, getenv("STANDIN_CALLS"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serveUntil(ctx, ln, s, stderr)
}

// serveUntil serves until ctx ends, then stops accepting and lets in-flight requests finish.
func serveUntil(ctx context.Context, ln net.Listener, h http.Handler, stderr io.Writer) int {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "standin: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(stderr, "standin: in-flight requests cut off: %v\n", err)
	}
	return 0
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
		return
	case "/login", "/logout":
		login(w, r)
		return
	}
	start := time.Now()
	a := s.answerFor(r)
	if !waitDelay(r.Context(), s.cfg.delay) {
		return // the caller has gone
	}
	if rand.Float64()*100 < s.cfg.failPercent {
		a.Status = http.StatusInternalServerError
	}
	a.LatencyMS = ms(time.Since(start))
	if wantsPage(r) {
		writePage(w, a)
		return
	}
	writeJSON(w, a.Status, a)
}

// answerFor makes the configured calls in order and reports them; a failed call degrades the answer, as
// in Bookinfo, rather than failing it.
func (s *server) answerFor(r *http.Request) answer {
	user := endUser(r)
	h := outbound(r, user)
	calls := make([]callResult, 0, len(s.cfg.calls))
	for _, c := range s.cfg.calls {
		calls = append(calls, s.call(r.Context(), c, h))
	}
	return answer{
		Standin: true, Service: s.id.service, Version: s.id.version, Pod: s.id.pod,
		Path: r.URL.Path, Status: http.StatusOK, User: user, Stars: s.cfg.stars, Ratings: s.ratings(calls),
		Headers: received(r.Header), Calls: calls,
	}
}

// ratings are Bookinfo's for the ratings role; reviews with stars pass on what their ratings call got.
func (s *server) ratings(calls []callResult) map[string]int {
	switch {
	case s.cfg.service == "ratings":
		return bookinfoRatings
	case s.cfg.stars == "":
		return nil
	}
	for _, c := range calls {
		if c.Service == "ratings" && c.Error == "" {
			return c.callee.Ratings
		}
	}
	return nil
}

// login is Bookinfo productpage's /login and /logout: it sets the user cookie (?user= or the login form's
// username) or clears it, then shows the page, so that a browser carries the user on from there.
func login(w http.ResponseWriter, r *http.Request) {
	cookie := &http.Cookie{Name: "user", Value: cmp.Or(r.FormValue("user"), r.FormValue("username")), Path: "/"}
	if cookie.Value == "" || r.URL.Path == "/logout" {
		cookie.Value, cookie.MaxAge = "", -1
	}
	http.SetCookie(w, cookie)
	http.Redirect(w, r, "/productpage", http.StatusFound)
}

// waitDelay waits d; false when ctx ended first.
func waitDelay(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// wantsPage: only /productpage is a page, as in Bookinfo, unless the client asks for JSON.
func wantsPage(r *http.Request) bool {
	if r.URL.Path != "/productpage" || r.URL.Query().Get("format") == "json" {
		return false
	}
	accept := strings.Join(r.Header.Values("Accept"), ",")
	return accept == "" || quality(accept, "application/json") <= quality(accept, "text/html")
}

// quality is the q an Accept header gives a media type, taken from the most specific range matching it.
func quality(accept, mediaType string) float64 {
	kind, _, _ := strings.Cut(mediaType, "/")
	specificity := map[string]int{"*/*": 1, kind + "/*": 2, mediaType: 3}
	q, best := 0.0, 0
	for mediaRange := range strings.SplitSeq(accept, ",") {
		params := strings.Split(mediaRange, ";")
		rank := specificity[strings.ToLower(strings.TrimSpace(params[0]))]
		if rank > best {
			q, best = qParam(params[1:]), rank
		}
	}
	return q
}

func qParam(params []string) float64 {
	for _, param := range params {
		name, value, _ := strings.Cut(param, "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return 0
			}
			return q
		}
	}
	return 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // an error means the client has gone
}
