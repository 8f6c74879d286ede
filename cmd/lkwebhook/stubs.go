package main

import (
	"context"
	"fmt"
	"io"
)

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "not yet")
	return 1
}
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "not yet")
	return 1
}
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "not yet")
	return 1
}
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "not yet")
	return 1
}
