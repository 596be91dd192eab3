package main

import (
	"testing"
	"time"
)

func TestParseSleep(t *testing.T) {
	cases := []struct {
		args []string
		want time.Duration
	}{
		{[]string{"10"}, 10 * time.Second},
		{[]string{"10s"}, 10 * time.Second},
		{[]string{"5m"}, 5 * time.Minute},
		{[]string{"2h"}, 2 * time.Hour},
		{[]string{"3650d"}, 3650 * 24 * time.Hour},
		{[]string{"0.5"}, 500 * time.Millisecond},
		{[]string{"1m", "30"}, 90 * time.Second},
		{[]string{"infinity"}, forever},
		{[]string{"1e12d"}, forever},
	}
	for _, c := range cases {
		got, err := parseSleep(c.args)
		if err != nil || got != c.want {
			t.Errorf("parseSleep(%q) = %v, %v; want %v", c.args, got, err, c.want)
		}
	}
}

func TestParseSleepRejects(t *testing.T) {
	for _, args := range [][]string{nil, {""}, {"d"}, {"-1"}, {"10x"}, {"nan"}, {"5", "soon"}} {
		if got, err := parseSleep(args); err == nil {
			t.Errorf("parseSleep(%q) = %v, want an error", args, got)
		}
	}
}

func TestRunAsSleepByName(t *testing.T) {
	if code := run([]string{"/bin/sleep", "0.01"}, nil, nil, nil); code != 0 {
		t.Errorf("sleep 0.01 exited %d", code)
	}
}
