package main

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// refuseTime bounds how long a refused connection is kept: long enough to
// answer and read what the client already sent, so that closing does not
// reset the connection before the client has read the 503.
const refuseTime = time.Second

// limitListener caps the connections being served at max. Beyond that it
// answers 503 with Retry-After and closes, rather than queueing: LiveKit
// retries a 503 after Retry-After, while a connection waiting to be
// accepted (golang.org/x/net/netutil.LimitListener blocks Accept) gets no
// answer at all — LiveKit's sender up to v1.13 has no request timeout, so
// the room's whole webhook queue would wait, and its events are dropped
// after 30 s.
type limitListener struct {
	net.Listener
	slots    chan struct{} // one per connection being served
	refusing chan struct{} // one per connection being refused
	answer   []byte
}

func newLimitListener(ln net.Listener, n int, retryAfter time.Duration) *limitListener {
	secs := max(1, int(retryAfter.Round(time.Second)/time.Second))
	body := `{"error":"Service Unavailable","reason":"too_many_connections"}`
	return &limitListener{
		Listener: ln,
		slots:    make(chan struct{}, n),
		refusing: make(chan struct{}, n),
		answer: []byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: " + strconv.Itoa(secs) +
			"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body),
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		select {
		case l.refusing <- struct{}{}:
			go l.refuse(c)
		default:
			_ = c.Close() // a flood: not even an answer
		}
	}
}

// refuse answers 503, then reads what the client sends until it closes or
// refuseTime passes.
func (l *limitListener) refuse(c net.Conn) {
	defer func() { <-l.refusing }()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(refuseTime))
	if _, err := c.Write(l.answer); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// limitConn gives its slot back on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
