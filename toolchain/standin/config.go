package main

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// config is what serve reads from the environment: each image's config sets it per role, a stack may
// override it.
type config struct {
	service     string
	version     string // when the pod name does not tell
	port        int
	calls       []callSpec
	stars       string
	failPercent float64
	delay       time.Duration
}

// callSpec is one service called for every request.
type callSpec struct {
	name    string
	port    int
	timeout time.Duration // per attempt
	retries int           // extra attempts after a failure
}

// defaultCallTimeout is what Bookinfo's productpage gives details and reviews.
const defaultCallTimeout = 3 * time.Second

const maxRetries = 10

// dnsLabel is a Kubernetes Service name, which is also what the env fallback derives its variable from.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// url is where the call goes; the sidecar intercepts the plain HTTP and upgrades it to mTLS.
func (c callSpec) url() string {
	return "http://" + c.hostPort() + "/" + c.name
}

func (c callSpec) hostPort() string {
	return net.JoinHostPort(c.name, strconv.Itoa(c.port))
}

// loadConfig reads the STANDIN_* variables; an error names the variable and its value.
func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{service: getenv("STANDIN_SERVICE"), version: getenv("STANDIN_VERSION"), port: 8080}
	parsers := []struct {
		name  string
		parse func(string) error
	}{
		{"STANDIN_PORT", func(v string) (err error) { cfg.port, err = parsePort(v); return err }},
		{"STANDIN_CALLS", func(v string) (err error) { cfg.calls, err = parseCalls(v); return err }},
		{"STANDIN_STARS", func(v string) (err error) { cfg.stars, err = parseStars(v); return err }},
		{"STANDIN_FAIL_PERCENT", func(v string) (err error) { cfg.failPercent, err = parsePercent(v); return err }},
		{"STANDIN_DELAY", func(v string) (err error) { cfg.delay, err = parseDelay(v); return err }},
	}
	for _, p := range parsers {
		if v := getenv(p.name); v != "" {
			if err := p.parse(v); err != nil {
				return config{}, fmt.Errorf("%s=%q: %w", p.name, v, err)
			}
		}
	}
	return cfg, nil
}

// parseCalls reads name:port[:timeout[:retries]] entries, comma separated, in calling order.
func parseCalls(value string) ([]callSpec, error) {
	var calls []callSpec
	for entry := range strings.SplitSeq(value, ",") {
		call, err := parseCall(strings.TrimSpace(entry))
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", entry, err)
		}
		calls = append(calls, call)
	}
	return calls, nil
}

func parseCall(entry string) (callSpec, error) {
	fields := strings.Split(entry, ":")
	if len(fields) < 2 || len(fields) > 4 {
		return callSpec{}, errors.New("want name:port[:timeout[:retries]]")
	}
	call := callSpec{name: fields[0], timeout: defaultCallTimeout}
	if !dnsLabel.MatchString(call.name) {
		return callSpec{}, fmt.Errorf("service name %q is not a DNS label (lower case letters, digits, dashes)", call.name)
	}
	var err error
	if call.port, err = parsePort(fields[1]); err != nil {
		return callSpec{}, err
	}
	if len(fields) > 2 {
		if call.timeout, err = time.ParseDuration(fields[2]); err != nil || call.timeout <= 0 {
			return callSpec{}, fmt.Errorf("timeout %q is not a positive Go duration such as 3s", fields[2])
		}
	}
	if len(fields) > 3 {
		if call.retries, err = strconv.Atoi(fields[3]); err != nil || call.retries < 0 || call.retries > maxRetries {
			return callSpec{}, fmt.Errorf("retries %q is not a number 0-%d", fields[3], maxRetries)
		}
	}
	return call, nil
}

func parsePort(v string) (int, error) {
	port, err := strconv.Atoi(v)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("port %q is not a number 1-65535", v)
	}
	return port, nil
}

// parseStars takes Bookinfo's reviews colors: black for v2, red for v3 (v1 shows none).
func parseStars(v string) (string, error) {
	if v != "black" && v != "red" {
		return "", errors.New(`want "black", "red" or unset`)
	}
	return v, nil
}

func parsePercent(v string) (float64, error) {
	percent, err := strconv.ParseFloat(v, 64)
	if err != nil || !(percent >= 0 && percent <= 100) {
		return 0, errors.New("want a number 0-100")
	}
	return percent, nil
}

func parseDelay(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("want a Go duration such as 250ms")
	}
	return d, nil
}
