package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook"
)

const (
	defaultAdminURL = "http://127.0.0.1:8080"
	defaultDLQPath  = "/voice/livekit/dlq"
)

const dlqUsage = `usage: lkwebhook dlq list   [--url URL] [--admin-token T] [--json]
       lkwebhook dlq replay (--id EVENT_ID | --all) [--url URL] [--admin-token T]

Lists or replays the receiver's dead letters (events whose processing failed
max_attempts times, and events or session reports that owe a call to a hook
no longer registered: replay them once it is) through its admin API:
GET URL/voice/livekit/dlq and
POST URL/voice/livekit/dlq/replay. A --url with a path is used as the DLQ
path. Without an admin token the receiver answers local clients only
(loopback, not through a proxy), and serve on a non-loopback address turns
these endpoints off.

Flags:
`

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, dlqUsage)
		fs.PrintDefaults()
	}
	base := fs.String("url", defaultAdminURL, "receiver base URL")
	token := fs.String("admin-token", os.Getenv("LKWEBHOOK_ADMIN_TOKEN"), "admin token (env LKWEBHOOK_ADMIN_TOKEN)")
	id := fs.String("id", "", "replay: the event id of the dead letter to replay")
	all := fs.Bool("all", false, "replay: replay every dead letter")
	asJSON := fs.Bool("json", false, "list: print JSON instead of a table")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 || (pos[0] != "list" && pos[0] != "replay") {
		fs.Usage()
		return 2
	}
	endpoint, err := dlqEndpoint(*base)
	if err != nil {
		fmt.Fprintln(stderr, "lkwebhook dlq:", err)
		return 2
	}
	c := adminClient{token: *token}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	if pos[0] == "list" {
		var list struct {
			DeadLetters []livekitwebhook.DeadLetter `json:"dead_letters"`
		}
		raw, err := c.do(ctx, http.MethodGet, endpoint, &list)
		if err != nil {
			fmt.Fprintln(stderr, "lkwebhook dlq list:", err)
			return 1
		}
		if *asJSON {
			stdout.Write(raw)
			return 0
		}
		printDeadLetters(stdout, list.DeadLetters)
		return 0
	}

	if (*id == "") == !*all {
		fmt.Fprintln(stderr, "lkwebhook dlq replay: give exactly one of --id EVENT_ID or --all")
		return 2
	}
	q := url.Values{}
	if *all {
		q.Set("all", "true")
	} else {
		q.Set("id", *id)
	}
	var res struct {
		Replayed int `json:"replayed"`
	}
	if _, err := c.do(ctx, http.MethodPost, endpoint+"/replay?"+q.Encode(), &res); err != nil {
		fmt.Fprintln(stderr, "lkwebhook dlq replay:", err)
		return 1
	}
	fmt.Fprintf(stdout, "replayed %d dead letter%s\n", res.Replayed, plural(res.Replayed))
	return 0
}

// dlqEndpoint is the DLQ URL: base + the default path, or base itself when
// it has a path.
func dlqEndpoint(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("--url %q: want http(s)://host:port", base)
	}
	u.RawQuery, u.Fragment = "", ""
	if p := strings.TrimSuffix(u.Path, "/"); p == "" {
		u.Path = defaultDLQPath
	} else {
		u.Path = p
	}
	return u.String(), nil
}

func printDeadLetters(w io.Writer, list []livekitwebhook.DeadLetter) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tEVENT ID\tEVENT\tATTEMPTS\tDEAD-LETTERED\tERROR")
	for _, d := range list {
		msg := strings.Join(strings.Fields(d.Error), " ")
		if len(msg) > 120 {
			msg = msg[:117] + "..."
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", d.Seq, d.EventID, d.Event, d.Attempts,
			d.At.UTC().Format(time.RFC3339), msg)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "%d dead letter%s\n", len(list), plural(len(list)))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// adminClient calls the receiver's admin endpoints.
type adminClient struct {
	token string
}

// do sends the request and decodes a 2xx JSON answer into out; it returns
// the raw answer. Other answers become errors with a hint.
func (c adminClient) do(ctx context.Context, method, u string, out any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	if method != http.MethodGet {
		// The receiver refuses state changes in a form a web page could
		// forge; a JSON request is not one.
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var refusal struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(raw, &refusal)
		msg := fmt.Sprintf("%s %s", resp.Proto, resp.Status)
		if refusal.Reason != "" {
			msg += ": " + refusal.Reason
		} else if s := strings.TrimSpace(string(raw)); s != "" && len(s) < 300 {
			msg += ": " + s
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			msg += " (set --admin-token or LKWEBHOOK_ADMIN_TOKEN to the receiver's admin token)"
		case http.StatusForbidden:
			msg += " (without an admin token the receiver answers local clients only: loopback, not through a proxy; on a non-loopback address serve needs --admin-token)"
		}
		return raw, fmt.Errorf("%s", msg)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return raw, fmt.Errorf("unexpected answer from %s: %v", u, err)
	}
	return raw, nil
}
