package main

import (
	"strings"
	"testing"
	"time"
)

func envOf(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestParseCalls(t *testing.T) {
	got, err := parseCalls("details:9080:3s, reviews:9080:10s:2,ratings:9080")
	if err != nil {
		t.Fatal(err)
	}
	want := []callSpec{
		{name: "details", port: 9080, timeout: 3 * time.Second},
		{name: "reviews", port: 9080, timeout: 10 * time.Second, retries: 2},
		{name: "ratings", port: 9080, timeout: defaultCallTimeout},
	}
	if len(got) != len(want) {
		t.Fatalf("parseCalls = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got[1].url() != "http://reviews:9080/reviews" {
		t.Errorf("url = %q", got[1].url())
	}
}

func TestParseCallsRejects(t *testing.T) {
	cases := map[string]string{
		"details":                    "want name:port[:timeout[:retries]]",
		"details:9080:3s:1:x":        "want name:port[:timeout[:retries]]",
		"Details:9080":               `service name "Details" is not a DNS label`,
		"details:http":               `port "http" is not a number 1-65535`,
		"details:0":                  `port "0" is not a number 1-65535`,
		"details:9080:3":             `timeout "3" is not a positive Go duration`,
		"details:9080:-1s":           `timeout "-1s" is not a positive Go duration`,
		"details:9080:3s:many":       `retries "many" is not a number 0-10`,
		"details:9080:3s:11":         `retries "11" is not a number 0-10`,
		"details:9080,,reviews:9080": `entry "": want name:port`,
		"details:9080,reviews:99999": `entry "reviews:99999": port "99999"`,
	}
	for value, want := range cases {
		_, err := parseCalls(value)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseCalls(%q) error = %v, want it to contain %q", value, err, want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	cfg, err := loadConfig(envOf(map[string]string{
		"STANDIN_SERVICE": "reviews", "STANDIN_VERSION": "v9", "STANDIN_CALLS": "ratings:9080:10s",
		"STANDIN_STARS": "red", "STANDIN_FAIL_PERCENT": "12.5", "STANDIN_DELAY": "250ms",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.service != "reviews" || cfg.version != "v9" || cfg.port != 8080 || len(cfg.calls) != 1 ||
		cfg.stars != "red" || cfg.failPercent != 12.5 || cfg.delay != 250*time.Millisecond {
		t.Errorf("loadConfig = %+v", cfg)
	}
}

func TestLoadConfigNamesTheVariableAndValue(t *testing.T) {
	cases := map[string]string{
		"STANDIN_PORT":         "80a",
		"STANDIN_CALLS":        "details:9080:soon",
		"STANDIN_STARS":        "blue",
		"STANDIN_FAIL_PERCENT": "101",
		"STANDIN_DELAY":        "-1s",
	}
	for name, value := range cases {
		_, err := loadConfig(envOf(map[string]string{name: value}))
		want := name + `="` + value + `": `
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s=%s: error = %v, want it to start with %q", name, value, err, want)
		}
	}
}

func TestServeExitsTwoOnBadConfig(t *testing.T) {
	var stderr strings.Builder
	code := serveMain(nil, envOf(map[string]string{"STANDIN_CALLS": "details:nine"}), &stderr)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if want := `STANDIN_CALLS="details:nine"`; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not contain %q", stderr.String(), want)
	}
}
