package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beluga-ai-contrib/beluga-livekit/livekitwebhook/livekitwebhooktest"
)

const (
	serveTestKey    = "APIservetest"
	serveTestSecret = "serve-test-secret-0123456789abcdefghij"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRe = regexp.MustCompile(`listening on http://(\S+?)/`)

// startServe runs `lkwebhook serve` in-process with a fresh data directory
// until the test ends, and returns its base URL on 127.0.0.1 (whatever
// address it bound) and its stdout.
func startServe(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	t.Setenv("GOMEMLIMIT", "off") // serve would set the test process's limit otherwise
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- runServe(ctx, append([]string{"--data", t.TempDir()}, args...), &out, &errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := listeningRe.FindStringSubmatch(out.String()); m != nil {
			_, port, err := net.SplitHostPort(m[1])
			if err != nil {
				t.Fatal(err)
			}
			return "http://127.0.0.1:" + port, &out
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d\n%s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not listening\n%s", errb.String())
		}
	}
}

func serveKeyEnv(t *testing.T) {
	clearKeyEnv(t)
	t.Setenv("LIVEKIT_API_KEY", serveTestKey)
	t.Setenv("LIVEKIT_API_SECRET", serveTestSecret)
}

// call returns the status and refusal reason of one request.
func call(t *testing.T, method, u, token string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var ref struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(b, &ref)
	return res.StatusCode, ref.Reason
}

func signedEvent(t *testing.T, key, secret, id string) ([]byte, map[string]string) {
	t.Helper()
	body := []byte(`{"event":"room_started","id":"` + id + `","createdAt":"` + strconv.FormatInt(time.Now().Unix(), 10) + `","room":{"sid":"RM_serve","name":"serve-room"}}`)
	tok, err := livekitwebhooktest.Sign(key, secret, body)
	if err != nil {
		t.Fatal(err)
	}
	return body, map[string]string{"Authorization": tok, "Content-Type": "application/webhook+json"}
}

// serve on a non-loopback address without an admin token turns the admin
// endpoints off and says so; webhooks and /healthz work. With a token they
// work as before.
func TestServeAdminOffOnPublicAddress(t *testing.T) {
	serveKeyEnv(t)
	base, out := startServe(t, "--addr", ":0")
	if !strings.Contains(out.String(), "WARNING: admin endpoints") {
		t.Errorf("no startup warning:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "lkwebhook: console OFF: the admin endpoints are off") {
		t.Errorf("no word that the console is off:\n%s", out.String())
	}
	for _, p := range []string{"/voice/livekit/sessions", "/voice/livekit/sessions/serve-room", "/voice/livekit/dlq", "/voice/livekit/reconcile", "/metrics"} {
		if code, reason := call(t, http.MethodGet, base+p, "", nil, nil); code != http.StatusForbidden || reason != "admin_disabled" {
			t.Errorf("GET %s from loopback: %d %q, want 403 admin_disabled", p, code, reason)
		}
	}
	body, hdr := signedEvent(t, serveTestKey, serveTestSecret, "EV_serveoff001")
	if code, reason := call(t, http.MethodPost, base+"/voice/livekit/webhooks", "", body, hdr); code != http.StatusOK {
		t.Fatalf("webhook: %d %s", code, reason)
	}
	if code, _ := call(t, http.MethodGet, base+"/healthz", "", nil, nil); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}

	const token = "serve-admin-t0ken"
	base, out = startServe(t, "--addr", ":0", "--admin-token", token)
	if strings.Contains(out.String(), "WARNING") {
		t.Errorf("warning with a token:\n%s", out.String())
	}
	// The console's URL, where this host reaches it, and that it needs the token.
	if want := "lkwebhook: console at http://localhost:" + base[strings.LastIndex(base, ":")+1:] + "/voice/livekit/console/ (log in with the admin token)"; !strings.Contains(out.String(), want) {
		t.Errorf("no console URL %q:\n%s", want, out.String())
	}
	if code, _ := call(t, http.MethodGet, base+"/voice/livekit/console/", token, nil, nil); code != http.StatusOK {
		t.Errorf("console with the token: %d", code)
	}
	for _, p := range []string{"/voice/livekit/sessions", "/voice/livekit/dlq", "/metrics"} {
		if code, reason := call(t, http.MethodGet, base+p, token, nil, nil); code != http.StatusOK {
			t.Errorf("GET %s with the token: %d %q", p, code, reason)
		}
	}
	if code, reason := call(t, http.MethodPost, base+"/voice/livekit/dlq/replay?all=true", token, nil, nil); code != http.StatusOK {
		t.Errorf("replay with the token: %d %q", code, reason)
	}
}

// Outside --dev a secret shorter than 32 characters stops serve with an
// error naming the key, not the secret; serve --dev with devkey/secret
// works.
func TestServeShortSecret(t *testing.T) {
	clearKeyEnv(t)
	t.Setenv("GOMEMLIMIT", "off")
	t.Setenv("LIVEKIT_API_KEY", "APIshort")
	t.Setenv("LIVEKIT_API_SECRET", "tiny-secret-x")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb syncBuffer
	code := runServe(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), `"APIshort"`) || !strings.Contains(errb.String(), "32 characters") {
		t.Fatalf("short secret: exit %d\n%s", code, errb.String())
	}
	if strings.Contains(errb.String()+out.String(), "tiny-secret-x") {
		t.Fatalf("the secret is printed:\n%s", errb.String())
	}

	base, _ := startServe(t, "--dev", "--addr", "127.0.0.1:0")
	body, hdr := signedEvent(t, devKey, devSecret, "EV_servedev001")
	if code, reason := call(t, http.MethodPost, base+"/voice/livekit/webhooks", "", body, hdr); code != http.StatusOK {
		t.Fatalf("serve --dev, devkey/secret: %d %s", code, reason)
	}
}

// rawGet sends one request on c and reads the answer.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// With max_connections open, the next connection is answered 503 with
// Retry-After at once (not queued); a slot freed serves again.
func TestServeMaxConnections(t *testing.T) {
	serveKeyEnv(t)
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_MAX_CONNECTIONS", "2")
	base, _ := startServe(t, "--addr", "127.0.0.1:0")
	addr := strings.TrimPrefix(base, "http://")
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if res := rawGet(t, c, bufio.NewReader(c), "/healthz"); res.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %d", len(held)+1, res.StatusCode)
		}
		held = append(held, c) // kept alive: it holds its slot
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := rawGet(t, c, bufio.NewReader(c), "/healthz")
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "2" || !res.Close {
		t.Fatalf("third connection: %d Retry-After %q close %v, want 503, 2, close", res.StatusCode, res.Header.Get("Retry-After"), res.Close)
	}
	held[0].Close()
	eventually(t, "a freed slot", func() bool {
		res, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}
