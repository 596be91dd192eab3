// Command standin is the one program every locally built image of the local cluster runs in place of the
// images that cannot be pulled here (nginx, Istio's Bookinfo services, curl). It says so in every answer.
//
// Called as sleep or pause (by argv[0], or as a subcommand) it is those; otherwise its subcommands are
// serve (the default), load and fetch.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

const usage = `usage:
  standin [serve]                      answer HTTP as the service STANDIN_* describe
  standin load --url URL [flags]       send requests, print a JSON report every interval
  standin fetch --url URL [flags]      send one request, print it as JSON
  sleep DURATION...                    coreutils sleep (s, m, h, d suffixes, infinity)
  pause                                block until SIGTERM or SIGINT`

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd, rest := filepath.Base(args[0]), args[1:]
	if cmd != "sleep" && cmd != "pause" {
		cmd = "serve"
		if len(rest) > 0 {
			cmd, rest = rest[0], rest[1:]
		}
	}
	switch cmd {
	case "sleep":
		return sleepMain(rest, stderr)
	case "pause":
		return pauseMain()
	case "serve":
		return serveMain(rest, os.Getenv, stderr)
	case "load":
		return loadMain(rest, stdin, stdout, stderr)
	case "fetch":
		return fetchMain(rest, stdout, stderr)
	}
	fmt.Fprintln(stderr, usage)
	return 2
}
