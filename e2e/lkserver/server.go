// Package lkserver runs a real livekit-server on loopback for end-to-end tests
// and drives it with real WebRTC participants (server-sdk-go).
//
// The binary is not built by the tests: e2e/install-livekit.sh builds it once
// into $HOME/.cache/lkwebhook-bin/server (or $LKWEBHOOK_LIVEKIT_BIN). Tests skip
// when it is missing, unless LKWEBHOOK_E2E_REQUIRED=1.
package lkserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"gopkg.in/yaml.v3"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/servetest"
)

// Environment variables understood by this package.
const (
	// EnvBinary overrides the path of the livekit-server binary.
	EnvBinary = "LKWEBHOOK_LIVEKIT_BIN"
	// EnvRequired turns a missing binary into a test failure instead of a skip.
	EnvRequired = "LKWEBHOOK_E2E_REQUIRED"
	// EnvSDKLog=1 keeps the server SDK's (and pion's) client-side log, which
	// is discarded by default because it is very chatty.
	EnvSDKLog = "LKWEBHOOK_E2E_SDK_LOG"
)

func init() {
	// The SDK logger is a package variable read by every connection's
	// goroutines, so it is set once here rather than per Join (a data race).
	if os.Getenv(EnvSDKLog) != "1" {
		lksdk.SetLogger(logger.GetDiscardLogger())
	}
}

// DefaultAPIKey is the API key used when Options.APIKey is empty.
const DefaultAPIKey = "devkey"

// Binary returns the path of the cached livekit-server binary:
// $LKWEBHOOK_LIVEKIT_BIN, else $HOME/.cache/lkwebhook-bin/server.
// If it is absent the test is skipped, or fails when LKWEBHOOK_E2E_REQUIRED=1.
func Binary(t testing.TB) string {
	t.Helper()
	path := os.Getenv(EnvBinary)
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			missing(t, "cannot find home directory: %v", err)
			return ""
		}
		path = filepath.Join(home, ".cache", "lkwebhook-bin", "server")
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		missing(t, "livekit-server binary not found at %s (%v); run e2e/install-livekit.sh or set %s", path, err, EnvBinary)
		return ""
	case st.IsDir() || st.Mode().Perm()&0o111 == 0:
		missing(t, "livekit-server binary at %s is not an executable file; run e2e/install-livekit.sh or set %s", path, EnvBinary)
		return ""
	}
	return path
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequired) == "1" {
		t.Fatalf("%s (%s=1, so this is an error)", msg, EnvRequired)
	}
	t.Skipf("skipping e2e test: %s (set %s=1 to fail instead)", msg, EnvRequired)
}

// Options configures a livekit-server started by Start.
type Options struct {
	// WebhookURLs receive the server's webhooks. Empty: no webhook section.
	WebhookURLs []string
	// APIKey and APISecret form the only key pair of the server; webhooks are
	// signed with it. Defaults: DefaultAPIKey and a random 48-char secret.
	// The secret must be at least 32 characters.
	APIKey    string
	APISecret string
	// EmptyTimeout and DepartureTimeout set the room defaults (room.empty_timeout,
	// room.departure_timeout), rounded up to whole seconds. Zero keeps the
	// server defaults (300 s and 20 s).
	EmptyTimeout     time.Duration
	DepartureTimeout time.Duration
	// LogLevel of the server (debug, info, warn, error). Default: info.
	LogLevel string
	// StartTimeout bounds the wait for the HTTP port. Default: 30 s.
	StartTimeout time.Duration
	// ICEPorts is the size of the UDP port range for WebRTC. Default: 20.
	ICEPorts int
}

// Server is a running livekit-server.
type Server struct {
	// URL is the HTTP base URL (http://127.0.0.1:PORT), for RoomService.
	URL string
	// WSURL is the signalling URL (ws://127.0.0.1:PORT), for the SDK's Connect.
	WSURL     string
	APIKey    string
	APISecret string
	// Port is the HTTP/signalling port, TCPPort the ICE/TCP port, and
	// UDPPortStart..UDPPortEnd the ICE UDP range.
	Port                     int
	TCPPort                  int
	UDPPortStart, UDPPortEnd int
	// ConfigPath and LogPath are files in the test's temp dir.
	ConfigPath string
	LogPath    string

	t        testing.TB
	cmd      *exec.Cmd
	logFile  *os.File
	exited   chan struct{}
	exitErr  error
	stopOnce sync.Once
}

// yamlConfig mirrors the subset of livekit-server's config.Config we write.
// The server decodes its config strictly: unknown keys stop startup.
type yamlConfig struct {
	Port          int               `yaml:"port"`
	BindAddresses []string          `yaml:"bind_addresses"`
	RTC           yamlRTC           `yaml:"rtc"`
	Keys          map[string]string `yaml:"keys"`
	WebHook       *yamlWebhook      `yaml:"webhook,omitempty"`
	Room          *yamlRoom         `yaml:"room,omitempty"`
	Logging       yamlLogging       `yaml:"logging"`
}

type yamlRTC struct {
	TCPPort        int    `yaml:"tcp_port"`
	PortRangeStart int    `yaml:"port_range_start"`
	PortRangeEnd   int    `yaml:"port_range_end"`
	UseExternalIP  bool   `yaml:"use_external_ip"`
	NodeIP         string `yaml:"node_ip"`
}

type yamlWebhook struct {
	APIKey string   `yaml:"api_key"`
	URLs   []string `yaml:"urls"`
}

type yamlRoom struct {
	EmptyTimeout     uint32 `yaml:"empty_timeout,omitempty"`
	DepartureTimeout uint32 `yaml:"departure_timeout,omitempty"`
}

type yamlLogging struct {
	Level string `yaml:"level"`
}

// Start writes a config, starts livekit-server with it, waits until its HTTP
// port answers and registers a cleanup that stops it (SIGTERM, then SIGKILL).
// The server's output goes to a file in t.TempDir(); its tail is printed if
// the test failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)

	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.APISecret == "" {
		opts.APISecret = servetest.RandomSecret()
	}
	if len(opts.APISecret) < 32 {
		t.Fatalf("lkserver: API secret must be at least 32 characters, got %d", len(opts.APISecret))
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.ICEPorts <= 0 {
		opts.ICEPorts = 20
	}

	dir := t.TempDir()
	// livekit-server cannot be told to bind port 0 (it would not say which
	// port it got): its ports are picked free, and another process can take
	// one before the server binds it. Start again on new ports then.
	for attempt := 1; ; attempt++ {
		s, err := start(t, bin, dir, attempt, opts)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("lkserver: could not start livekit-server (attempt %d): %v", attempt, err)
		}
		t.Logf("lkserver: start attempt %d: %v; starting again on new ports", attempt, err)
	}
}

// startAttempts bounds the starts of a server whose port was taken.
const startAttempts = 5

// errPortTaken: a port the server was configured with was taken before the
// server bound it.
var errPortTaken = errors.New("port taken before livekit-server bound it")

// pickPorts picks the ports of one start (a variable for the test of a
// port taken in between).
var pickPorts = allocPorts

func start(t testing.TB, bin, dir string, attempt int, opts Options) (*Server, error) {
	t.Helper()
	ports, err := pickPorts(opts.ICEPorts)
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL:          "http://127.0.0.1:" + strconv.Itoa(ports.http),
		WSURL:        "ws://127.0.0.1:" + strconv.Itoa(ports.http),
		APIKey:       opts.APIKey,
		APISecret:    opts.APISecret,
		Port:         ports.http,
		TCPPort:      ports.tcp,
		UDPPortStart: ports.udpStart,
		UDPPortEnd:   ports.udpEnd,
		ConfigPath:   filepath.Join(dir, fmt.Sprintf("livekit-%d.yaml", attempt)),
		LogPath:      filepath.Join(dir, fmt.Sprintf("livekit-%d.log", attempt)),
		t:            t,
		exited:       make(chan struct{}),
	}

	cfg := yamlConfig{
		Port:          ports.http,
		BindAddresses: []string{"127.0.0.1"},
		RTC: yamlRTC{
			TCPPort:        ports.tcp,
			PortRangeStart: ports.udpStart,
			PortRangeEnd:   ports.udpEnd,
			UseExternalIP:  false,
			NodeIP:         "127.0.0.1",
		},
		Keys:    map[string]string{opts.APIKey: opts.APISecret},
		Logging: yamlLogging{Level: opts.LogLevel},
	}
	if len(opts.WebhookURLs) > 0 {
		cfg.WebHook = &yamlWebhook{APIKey: opts.APIKey, URLs: opts.WebhookURLs}
	}
	if opts.EmptyTimeout > 0 || opts.DepartureTimeout > 0 {
		cfg.Room = &yamlRoom{EmptyTimeout: seconds(opts.EmptyTimeout), DepartureTimeout: seconds(opts.DepartureTimeout)}
	}
	data, err := yaml.Marshal(&cfg)
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := os.WriteFile(s.ConfigPath, data, 0o600); err != nil {
		return nil, err
	}

	s.logFile, err = os.Create(s.LogPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "--config", s.ConfigPath)
	s.cmd.Stdout = s.logFile
	s.cmd.Stderr = s.logFile
	// Keep the server out of the test's process group so a Ctrl-C is handled
	// by our cleanup, and strip variables that would override the config.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.Env = filteredEnv()
	if err := s.cmd.Start(); err != nil {
		_ = s.logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()

	if err := s.waitReady(opts.StartTimeout); err != nil {
		s.stop()
		if !errors.Is(err, errPortTaken) {
			t.Logf("lkserver: config was:\n%s", data)
			s.logTail(t, 60)
		}
		return nil, err
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			s.logTail(t, 80)
		}
	})
	return s, nil
}

// waitReady waits until a RoomService call signed with the server's key
// pair succeeds: only this server knows the pair, so an answer from another
// process that took its port does not count. A server that exited on a
// port in use yields errPortTaken.
func (s *Server) waitReady(timeout time.Duration) error {
	rs := s.RoomService()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			// livekit-server prints the error and exits 0.
			log, _ := os.ReadFile(s.LogPath)
			if line := servetest.BindFailure(string(log)); line != "" {
				return fmt.Errorf("%w: %s", errPortTaken, line)
			}
			return fmt.Errorf("livekit-server exited before becoming ready: %v", s.exitErr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := rs.ListRooms(ctx, &livekit.ListRoomsRequest{})
		cancel()
		if err == nil {
			// livekit-server marks itself running 100 ms after it starts
			// serving HTTP, and ignores a SIGTERM that comes before
			// (Stop sees "not running"). Let that window pass.
			time.Sleep(250 * time.Millisecond)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("livekit-server not ready on %s within %v (last: %v)", s.URL, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server now. It is also called by the test cleanup; calling
// it twice is fine.
//
// livekit-server's first SIGTERM is a graceful stop that waits, polling every
// 5 s, until no participant is left; a second SIGTERM forces the stop. So:
// SIGTERM, after 3 s SIGTERM again, after 5 more seconds SIGKILL.
func (s *Server) Stop() { s.stop() }

func (s *Server) stop() {
	s.stopOnce.Do(func() {
		defer func() { _ = s.logFile.Close() }()
		if s.cmd.Process == nil {
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			return
		case <-time.After(3 * time.Second):
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			return
		case <-time.After(5 * time.Second):
		}
		s.t.Logf("lkserver: livekit-server did not stop after two SIGTERMs, killing it")
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

// Exited is closed when the server process has ended.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	data, err := os.ReadFile(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", s.LogPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *Server) logTail(t testing.TB, n int) {
	t.Helper()
	t.Logf("lkserver: last %d lines of %s:\n%s", n, s.LogPath, s.LogTail(n))
}

// RoomService returns a RoomService client for the server.
func (s *Server) RoomService() *lksdk.RoomServiceClient {
	return lksdk.NewRoomServiceClient(s.URL, s.APIKey, s.APISecret)
}

// RoomService returns a RoomService client for srv.
func RoomService(srv *Server) *lksdk.RoomServiceClient { return srv.RoomService() }

// WaitFor polls cond every 50 ms until it returns true or ctx ends.
func WaitFor(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func seconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32((d + time.Second - 1) / time.Second)
}

// filteredEnv drops LIVEKIT_* variables (LIVEKIT_KEYS, LIVEKIT_CONFIG, …),
// which livekit-server would read on top of the config file.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LIVEKIT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Port allocation. Ports handed out by this process are remembered so that
// two servers of one test binary never share one; ports are also checked to
// be bindable right now, which guards against other processes.

type portSet struct {
	http, tcp        int
	udpStart, udpEnd int
}

var (
	portMu   sync.Mutex
	portUsed = map[string]bool{} // "tcp/N", "udp/N"
)

func allocPorts(udpCount int) (portSet, error) {
	portMu.Lock()
	defer portMu.Unlock()
	var ps portSet
	var err error
	if ps.http, err = freeTCPPort(); err != nil {
		return ps, err
	}
	if ps.tcp, err = freeTCPPort(); err != nil {
		return ps, err
	}
	if ps.udpStart, err = freeUDPRange(udpCount); err != nil {
		return ps, err
	}
	ps.udpEnd = ps.udpStart + udpCount - 1
	return ps, nil
}

// freeTCPPort returns a loopback TCP port that was free a moment ago, drawn
// below the kernel's ephemeral range, which connect() and port-0 binds use:
// on a machine busy with connections a port released there is soon taken
// again, one below it only by a process asking for it.
func freeTCPPort() (int, error) {
	lo := ephemeralLow()
	for range 100 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(lo-10000)))
		if err != nil {
			return 0, err
		}
		port := 10000 + int(n.Int64())
		key := "tcp/" + strconv.Itoa(port)
		if portUsed[key] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = l.Close()
		portUsed[key] = true
		return port, nil
	}
	return 0, errors.New("no free TCP port found")
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); len(f) == 2 {
		if lo, err := strconv.Atoi(f[0]); err == nil && lo > 11000 {
			return lo
		}
	}
	return 32768
}

// freeUDPRange finds count consecutive UDP ports in 20000–59999, all bindable
// on 127.0.0.1 right now and not handed out before by this process. The start
// is random so that concurrent test processes rarely pick the same range.
func freeUDPRange(count int) (int, error) {
	const lo, hi = 20000, 60000
	for range 200 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(hi-lo-count)))
		if err != nil {
			return 0, err
		}
		start := lo + int(n.Int64())
		if udpRangeFree(start, count) {
			for p := start; p < start+count; p++ {
				portUsed["udp/"+strconv.Itoa(p)] = true
			}
			return start, nil
		}
	}
	return 0, errors.New("no free UDP port range found")
}

func udpRangeFree(start, count int) bool {
	var conns []net.PacketConn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for p := start; p < start+count; p++ {
		if portUsed["udp/"+strconv.Itoa(p)] {
			return false
		}
		c, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		conns = append(conns, c)
	}
	return true
}
