// Command lkwebhook runs and exercises a LiveKit webhook receiver.
//
//	lkwebhook serve   run the receiver (webhooks, sessions API, /healthz, /metrics)
//	lkwebhook send    build, sign (exactly as LiveKit does) and post one event
//	lkwebhook verify  explain why a captured request does or does not verify
//	lkwebhook dlq     list and replay dead letters
//	lkwebhook bench   measure intake (or the whole pipeline: -mix calls) against a bare LiveKit handler
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the webhook receiver", runServe},
		{"send", "sign and post one webhook event", runSend},
		{"verify", "explain whether a captured request verifies", runVerify},
		{"dlq", "list (dlq list) or replay (dlq replay) dead letters", runDLQ},
		{"bench", "measure intake (or the whole pipeline: -mix calls) against a bare LiveKit handler", runBench},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return 2
	}
	if args[0] == mixLoadCommand { // bench -mix's child, not for users
		return runMixLoad(ctx, args[1:], stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "lkwebhook: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: lkwebhook <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'lkwebhook <command> -h' for a command's flags.")
}
