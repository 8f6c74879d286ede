package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/verify"
)

const verifyUsage = `usage: lkwebhook verify --auth TOKEN --body-file FILE [flags]

Explains, in plain sentences, whether a captured webhook request verifies
and why not: algorithm, key, validity window, signature, body hash (with the
likely cause of a mismatch). The verdict is the receiver's own. Secrets are
never printed. Exits 0 when the request verifies, 1 when it does not.

Keys: --keys and/or --key-file, else LIVEKIT_API_KEY/LIVEKIT_API_SECRET and
LIVEKIT_KEYS, else the dev key devkey/secret.

Flags:
`

func runVerify(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, verifyUsage)
		fs.PrintDefaults()
	}
	token := fs.String("auth", "", "the Authorization header value (raw JWT)")
	authFile := fs.String("auth-file", "", "read the Authorization value from this file instead")
	bodyFile := fs.String("body-file", "", "the exact request body (- for stdin)")
	keysText := fs.String("keys", "", `keys as "key: secret" lines (the format of LIVEKIT_KEYS)`)
	keyFile := fs.String("key-file", "", `file of "key: secret" lines (livekit-server's --key-file)`)
	at := fs.String("at", "", "verify as of this time: unix seconds or RFC 3339 (default: now); use the capture time")
	leeway := fs.Duration("leeway", verify.DefaultLeeway, "clock skew tolerated on nbf/exp")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "lkwebhook verify: unexpected argument %q\n", pos[0])
		return 2
	}
	if *bodyFile == "" || (*token == "" && *authFile == "") {
		fs.Usage()
		return 2
	}
	authorization := *token
	if *authFile != "" {
		b, err := readInput(*authFile)
		if err != nil {
			fmt.Fprintln(stderr, "lkwebhook verify:", err)
			return 2
		}
		authorization = strings.TrimSpace(string(b))
		// Accept a captured header line as well as the bare value.
		if k, v, ok := strings.Cut(authorization, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "authorization") {
			authorization = strings.TrimSpace(v)
		}
	}
	body, err := readInput(*bodyFile)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook verify:", err)
		return 2
	}
	now := time.Now()
	if *at != "" {
		if now, err = parseTime(*at); err != nil {
			fmt.Fprintln(stderr, "lkwebhook verify: --at:", err)
			return 2
		}
	}
	keys, err := verifyKeys(*keysText, *keyFile, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook verify:", err)
		return 2
	}
	e := verify.Explain(keys, authorization, body, now, *leeway)
	fmt.Fprint(stdout, e.String())
	if !e.OK {
		return 1
	}
	return 0
}

// verifyKeys is the key set verify checks against: --keys and --key-file,
// else every key of the environment, else the dev key (with a note).
func verifyKeys(text, file string, stderr io.Writer) (map[string]string, error) {
	keys := map[string]string{}
	add := func(src, t string) error {
		list, err := parseKeyLines(t)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		for _, kv := range list {
			keys[kv[0]] = kv[1]
		}
		return nil
	}
	if strings.TrimSpace(text) != "" {
		if err := add("--keys", text); err != nil {
			return nil, err
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if err := add("--key-file "+file, string(b)); err != nil {
			return nil, err
		}
	}
	if text != "" || file != "" {
		if len(keys) == 0 {
			return nil, errors.New("no keys in --keys/--key-file")
		}
		return keys, nil
	}
	env, err := envKeyList()
	if err != nil {
		return nil, err
	}
	for _, kv := range env {
		if _, ok := keys[kv[0]]; !ok {
			keys[kv[0]] = kv[1]
		}
	}
	if len(keys) == 0 {
		fmt.Fprintf(stderr, "lkwebhook: note: no key configured (--keys, --key-file, LIVEKIT_API_KEY/LIVEKIT_API_SECRET, LIVEKIT_KEYS); using the dev key %q of livekit-server --dev\n", devKey)
		keys[devKey] = devSecret
	}
	return keys, nil
}

// parseTime reads unix seconds or RFC 3339.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("want unix seconds or an RFC 3339 time")
	}
	return t, nil
}
