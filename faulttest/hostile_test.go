package faulttest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// maxBody is serve's default webhook body cap (Config.MaxBodyBytes).
const maxBody = 1 << 20

// rawResult is one raw HTTP exchange.
type rawResult struct {
	status  int
	header  http.Header
	close   bool          // the response announced Connection: close
	elapsed time.Duration // from the first byte written to the response
	written int64         // bytes the writer got out before the exchange ended
	err     error
}

// rawExchange dials serve, runs write in a goroutine (the server may close
// mid-write, so its errors are expected) and reads one HTTP response.
func rawExchange(t *testing.T, addr string, timeout time.Duration, write func(c net.Conn, n *atomic.Int64)) rawResult {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var written atomic.Int64
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		write(c, &written)
	}()
	_ = c.SetReadDeadline(start.Add(timeout))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	res := rawResult{elapsed: time.Since(start), err: err}
	if err == nil {
		res.status, res.header, res.close = resp.StatusCode, resp.Header, resp.Close
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	c.Close() // ends the writer
	wg.Wait()
	res.written = written.Load()
	return res
}

// writeAll writes b in pieces, counting what got out, until an error.
func writeAll(c net.Conn, n *atomic.Int64, b []byte, piece int) error {
	for len(b) > 0 {
		k := min(piece, len(b))
		w, err := c.Write(b[:k])
		n.Add(int64(w))
		if err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}

func TestHostileInput(t *testing.T) {
	s := startServe(t, t.TempDir())
	reqLine := "POST " + servetest.WebhookPath + " HTTP/1.1\r\nHost: " + s.Addr() + "\r\n"

	t.Run("header_1MiB", func(t *testing.T) {
		big := reqLine + "X-Big: " + strings.Repeat("a", 1<<20) + "\r\nContent-Length: 0\r\n\r\n"
		r := rawExchange(t, s.Addr(), 10*time.Second, func(c net.Conn, n *atomic.Int64) {
			_ = writeAll(c, n, []byte(big), 32<<10)
		})
		if r.err != nil || r.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("1 MiB header: status %d err %v, want 431", r.status, r.err)
		}
		t.Logf("1 MiB header: 431 in %s after %d bytes written", r.elapsed.Round(time.Millisecond), r.written)
	})

	t.Run("body_content_length_over_cap", func(t *testing.T) {
		// Declares 10 MiB, sends 1 KiB and then nothing: the answer must
		// come from the header alone, without waiting for (or reading) the body.
		head := reqLine + "Content-Type: application/webhook+json\r\nAuthorization: x\r\nContent-Length: " +
			fmt.Sprint(10<<20) + "\r\n\r\n"
		r := rawExchange(t, s.Addr(), 10*time.Second, func(c net.Conn, n *atomic.Int64) {
			_ = writeAll(c, n, append([]byte(head), bytes.Repeat([]byte("{"), 1024)...), 64<<10)
		})
		if r.err != nil || r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("Content-Length 10 MiB: status %d err %v, want 413", r.status, r.err)
		}
		if r.elapsed > 2*time.Second {
			t.Errorf("413 took %s", r.elapsed)
		}
		if !r.close {
			t.Errorf("413 without Connection: close: the server would drain the declared body")
		}
		t.Logf("Content-Length 10 MiB: 413 in %s, Connection: close", r.elapsed.Round(time.Millisecond))
	})

	t.Run("body_chunked_over_cap", func(t *testing.T) {
		// No Content-Length: a chunked body that never ends (up to 64 MiB).
		head := reqLine + "Content-Type: application/webhook+json\r\nAuthorization: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 64<<10, bytes.Repeat([]byte("a"), 64<<10)))
		r := rawExchange(t, s.Addr(), 10*time.Second, func(c net.Conn, n *atomic.Int64) {
			if writeAll(c, n, []byte(head), len(head)) != nil {
				return
			}
			for i := 0; i < 1024 && n.Load() < 64<<20; i++ {
				if writeAll(c, n, chunk, len(chunk)) != nil {
					return
				}
			}
		})
		if r.err != nil || r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked endless body: status %d err %v, want 413", r.status, r.err)
		}
		if r.elapsed > 5*time.Second {
			t.Errorf("413 took %s", r.elapsed)
		}
		t.Logf("chunked endless body: 413 in %s, %d bytes written in all", r.elapsed.Round(time.Millisecond), r.written)
	})

	t.Run("slowloris_headers", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // one byte of a never-ending header every 200 ms
			defer wg.Done()
			msg := []byte(reqLine + "X-Slow: " + strings.Repeat("z", 1000))
			for i := 0; i < len(msg); i++ {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := c.Write(msg[i : i+1]); err != nil {
					return
				}
			}
		}()
		_ = c.SetReadDeadline(start.Add(15 * time.Second))
		_, err = io.Copy(io.Discard, c) // returns when the server closes
		closed := time.Since(start)
		close(stop)
		wg.Wait()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow-loris connection still open after %s", closed.Round(time.Millisecond))
		}
		if closed > 8*time.Second {
			t.Errorf("slow-loris connection closed after %s, want within ReadHeaderTimeout (5s) + margin", closed)
		}
		t.Logf("slow-loris connection closed by the server after %s (err %v)", closed.Round(time.Millisecond), err)
	})

	t.Run("nested_json", func(t *testing.T) {
		const depth = 100_000
		bodies := map[string][]byte{
			"arrays_unclosed":    bytes.Repeat([]byte("["), depth),
			"arrays_balanced":    append(bytes.Repeat([]byte("["), depth), bytes.Repeat([]byte("]"), depth)...),
			"unknown_field_deep": []byte(`{"event":"room_started","id":"EV_nested0000001","room":{"sid":"RM_nested","name":"nested"},"zz":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`),
			"objects_deep":       []byte(strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)),
		}
		for name, body := range bodies {
			start := time.Now()
			code, _, resp, err := s.PostRaw(body)
			took := time.Since(start)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if code != http.StatusBadRequest {
				t.Errorf("%s (%d bytes): status %d %s, want 400", name, len(body), code, bytes.TrimSpace(resp))
			}
			if took > 2*time.Second {
				t.Errorf("%s: answer took %s", name, took)
			}
			t.Logf("%s (%d bytes): %d in %s", name, len(body), code, took.Round(time.Millisecond))
		}
		if h := s.Health(); h != http.StatusOK || !s.Running() {
			t.Fatalf("after nested JSON: healthz %d running %v", h, s.Running())
		}
	})

	t.Run("body_at_cap", func(t *testing.T) {
		// Validly signed events whose body is just under, and exactly at, the
		// cap: each is either stored (200) or refused for good (4xx). A 5xx
		// would make LiveKit retry an event that can never be stored.
		bugs := newBugLog(t)
		for _, size := range []int{maxBody - 16<<10, maxBody - 1<<10, maxBody - 200, maxBody} {
			body := eventOfSize(t, size, "cap", fmt.Sprint(size))
			code, hdr, resp, err := s.PostRaw(body)
			if err != nil {
				t.Errorf("body of %d bytes: %v", len(body), err)
				continue
			}
			t.Logf("body of %d bytes: %d %s", len(body), code, bytes.TrimSpace(resp))
			if code == http.StatusServiceUnavailable && bytes.Contains(resp, []byte("engine_unavailable")) {
				bugs.errorf(bugMaxPayload, "signed body of %d bytes (cap %d): 503 engine_unavailable, Retry-After %q",
					len(body), maxBody, hdr.Get("Retry-After"))
				continue
			}
			if code != http.StatusOK && (code < 400 || code >= 500) {
				t.Errorf("body of %d bytes (cap %d): status %d (Retry-After %q) %s; want 200 or a 4xx: a 5xx is retried by LiveKit but can never succeed",
					len(body), maxBody, code, hdr.Get("Retry-After"), bytes.TrimSpace(resp))
			}
		}
		if h := s.Health(); h != http.StatusOK {
			t.Fatalf("after bodies at the cap: healthz %d", h)
		}
		bugs.finish()
	})

	t.Run("huge_metadata_rss", func(t *testing.T) {
		pid := s.PID()
		send := func(i int) (int, error) {
			body := eventOfSize(t, 900<<10, "rss", fmt.Sprint(i))
			code, _, _, err := s.PostRaw(body)
			return code, err
		}
		for i := 0; i < 5; i++ { // warm up
			if _, err := send(-1 - i); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(500 * time.Millisecond)
		before, err := vmRSS(pid, "VmRSS")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		const total, workers = 200, 8
		var next atomic.Int64
		var codes sync.Map
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i > total {
						return
					}
					code, err := send(i)
					if err != nil {
						code = -1
					}
					v, _ := codes.LoadOrStore(code, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		time.Sleep(2 * time.Second) // let processing of the stored events catch up
		after, err := vmRSS(pid, "VmRSS")
		if err != nil {
			t.Fatalf("serve gone after the huge bodies: %v", err)
		}
		peak, _ := vmRSS(pid, "VmHWM")
		summary := map[int]int64{}
		codes.Range(func(k, v any) bool { summary[k.(int)] = v.(*atomic.Int64).Load(); return true })
		t.Logf("%d requests of ~900 KiB in %s: statuses %v; VmRSS %d MiB -> %d MiB (peak %d MiB)",
			total, took.Round(time.Millisecond), summary, before>>20, after>>20, peak>>20)
		for code, n := range summary {
			if code != http.StatusOK && (code < 400 || code >= 500) {
				t.Errorf("%d requests answered %d", n, code)
			}
		}
		if h := s.Health(); h != http.StatusOK {
			t.Errorf("after the huge bodies: healthz %d", h)
		}
		if growth := after - before; growth > 200<<20 {
			bugs := newBugLog(t)
			bugs.errorf(bugRSS, "VmRSS grew by %d MiB (> 200 MiB) for %d MiB of bodies", growth>>20, total*900>>10)
			bugs.finish()
		}
	})

	if !s.Running() {
		t.Fatal("serve exited during hostile input")
	}
	if h := s.Health(); h != http.StatusOK {
		t.Fatalf("serve unhealthy after hostile input: %d", h)
	}
}

// eventOfSize is a room_started event whose protojson body is exactly size
// bytes, padded with room metadata.
func eventOfSize(t *testing.T, size int, tag, n string) []byte {
	t.Helper()
	now := time.Now().Unix()
	ev := &livekit.WebhookEvent{Id: lkID("EV_"), Event: "room_started", CreatedAt: now,
		Room: &livekit.Room{Sid: "RM_" + tag + n + lkID("")[:4], Name: tag + "-" + n, CreationTime: now, Metadata: "m"}}
	for range 3 {
		b, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == size {
			return b
		}
		ev.Room.Metadata += strings.Repeat("m", size-len(b))
		if len(ev.Room.Metadata) < 1 {
			t.Fatalf("cannot build an event of %d bytes", size)
		}
	}
	t.Fatalf("cannot build an event of exactly %d bytes", size)
	return nil
}
