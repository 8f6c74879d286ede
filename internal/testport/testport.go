// Package testport picks loopback TCP ports for the tests' servers that must
// be told their port before they bind it (a NATS cluster's routes, Beluga
// adapters, which do not report the port of ":0"). Any other server binds
// port 0 and reports what it got.
//
// A picked port was free a moment ago; another process can take it before
// the server binds it, so callers start the server again on a new port when
// the bind fails. Ports are drawn below the kernel's ephemeral range, which
// connect() and port-0 binds use: on a machine busy with connections a port
// released there is soon taken again, one below it only by a process asking
// for that very port.
package testport

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port handed out: below, well-known services.
const lowest = 10000

var (
	mu    sync.Mutex
	given = map[int]bool{} // never hand a port out twice in one process
)

// Free returns a loopback TCP port, below the ephemeral range, that was
// free a moment ago.
func Free() (int, error) {
	top := ephemeralLow()
	mu.Lock()
	defer mu.Unlock()
	for range 100 {
		port := lowest + rand.IntN(top-lowest)
		if given[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = ln.Close()
		given[port] = true
		return port, nil
	}
	return 0, errors.New("testport: no free port below the ephemeral range")
}

// Addr is Free as a "127.0.0.1:port" address.
func Addr() (string, error) {
	port, err := Free()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); len(f) == 2 {
		if lo, err := strconv.Atoi(f[0]); err == nil && lo > lowest+1000 {
			return lo
		}
	}
	return 32768
}
