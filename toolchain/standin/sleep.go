package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// forever is time.Duration's largest value (about 292 years), which is what "infinity" means here.
const forever = time.Duration(math.MaxInt64)

var sleepUnits = map[byte]float64{'s': 1, 'm': 60, 'h': 3600, 'd': 86400}

// sleepMain is coreutils sleep. It ends early on SIGTERM or SIGINT with the status of a process killed by
// that signal: as a container's PID 1 it would otherwise ignore SIGTERM and hold its pod for the grace period.
func sleepMain(args []string, stderr io.Writer) int {
	d, err := parseSleep(args)
	if err != nil {
		fmt.Fprintf(stderr, "sleep: %v\n", err)
		return 1
	}
	if sig, ok := waitFor(d).(syscall.Signal); ok {
		return 128 + int(sig)
	}
	return 0
}

// pauseMain is the Kubernetes pause (sandbox) image: it holds the pod's namespaces until told to stop.
func pauseMain() int {
	waitFor(forever)
	return 0
}

// parseSleep reads sleep's operands, summed: numbers (fractions too) with an optional s, m, h or d suffix,
// or "infinity".
func parseSleep(args []string) (time.Duration, error) {
	if len(args) == 0 {
		return 0, errors.New("missing operand")
	}
	total := 0.0
	for _, arg := range args {
		seconds, err := parseInterval(arg)
		if err != nil {
			return 0, err
		}
		total += seconds
	}
	if nanos := total * float64(time.Second); nanos < float64(forever) {
		return time.Duration(nanos), nil
	}
	return forever, nil
}

func parseInterval(arg string) (float64, error) {
	number, unit := arg, 1.0
	if n := len(arg); n > 0 && sleepUnits[arg[n-1]] != 0 {
		number, unit = arg[:n-1], sleepUnits[arg[n-1]]
	}
	seconds, err := strconv.ParseFloat(number, 64)
	if err != nil || seconds < 0 || math.IsNaN(seconds) {
		return 0, fmt.Errorf("invalid time interval %q", arg)
	}
	return seconds * unit, nil
}

// waitFor waits d, or until SIGTERM or SIGINT arrives; it returns that signal, or nil when d ran out.
func waitFor(d time.Duration) os.Signal {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case sig := <-signals:
		return sig
	}
}
