package livekitwebhook

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/lookatitude/beluga-ai/v2/config"
	"gopkg.in/yaml.v3"
)

// envPrefix is the prefix of every configuration environment variable
// (BELUGA_LIVEKIT_WEBHOOK_API_KEY, …).
const envPrefix = "BELUGA_LIVEKIT_WEBHOOK"

// Config configures a Receiver. It loads with Beluga's config.Load (JSON)
// and config.LoadFromEnv (variables BELUGA_LIVEKIT_WEBHOOK_<JSON NAME>, such
// as BELUGA_LIVEKIT_WEBHOOK_API_KEY). Durations are strings in Go
// syntax ("90s", "24h") because Beluga's loader cannot fill time.Duration.
type Config struct {
	// Enabled switches the plugin on when wired with AutoWire.
	Enabled bool `json:"enabled"`
	// Path is where LiveKit posts webhooks.
	Path string `json:"path" default:"/voice/livekit/webhooks"`
	// SessionsPath serves the sessions API (and SessionsPath+"/{id}").
	SessionsPath string `json:"sessions_path" default:"/voice/livekit/sessions"`
	// ConsolePath serves the operator's console (and every path under it),
	// under the admin rule of the sessions API.
	ConsolePath string `json:"console_path" default:"/voice/livekit/console"`
	// ConsoleTraceURL links a call's trace in the console: "{trace_id}" is
	// replaced (e.g. "http://jaeger:16686/trace/{trace_id}"). Empty: the
	// trace id is shown without a link.
	ConsoleTraceURL string `json:"console_trace_url"`

	// APIKey and APISecret: one signing key. Keys adds more as
	// "key: secret" lines (the format of LIVEKIT_KEYS), KeyFile reads such
	// lines from a file. All are merged; at least one key is required.
	APIKey    string `json:"api_key"`
	APISecret string `json:"api_secret"`
	Keys      string `json:"keys"`
	KeyFile   string `json:"key_file"`
	// Projects names the LiveKit projects that post here: "key: name"
	// lines (or a JSON object). A key not listed is its own project. Each
	// project's sessions are kept apart; keys with one name are one
	// project (see projects.go).
	Projects ProjectNames `json:"projects"`

	// Leeway tolerated on the token's nbf/exp.
	Leeway string `json:"leeway" default:"60s"`
	// MaxBodyBytes caps a webhook body; larger ones get 413.
	MaxBodyBytes int64 `json:"max_body_bytes" default:"1048576" min:"1024"`
	// LegacySignature also accepts a hex HMAC-SHA256 of the body in
	// X-LiveKit-Signature. Real LiveKit never sends it.
	LegacySignature bool `json:"legacy_signature"`
	// Events to keep, comma separated; empty keeps all. Others are answered
	// 200 and counted, not stored.
	Events string `json:"events"`

	// DataDir holds the embedded engine's storage. Empty: DefaultDataDir
	// ("./data") under the working directory, and Start logs a WARN line
	// naming that absolute directory. Ignored when NatsURL is set.
	DataDir string `json:"data_dir"`
	// NatsURL selects an external NATS/JetStream deployment instead.
	NatsURL     string `json:"nats_url"`
	NatsCreds   string `json:"nats_creds"`
	NatsTLSCA   string `json:"nats_tls_ca"`
	NatsTLSCert string `json:"nats_tls_cert"`
	NatsTLSKey  string `json:"nats_tls_key"`
	// Replicas of streams and buckets on an external cluster.
	Replicas int `json:"replicas" default:"1" min:"1" max:"5"`
	// DedupeWindow: how long an event id is remembered.
	DedupeWindow string `json:"dedupe_window" default:"24h"`
	// AcceptTimeout bounds the durable write; past it the answer is 503.
	AcceptTimeout string `json:"accept_timeout" default:"5s"`
	// RetryAfter is the Retry-After sent with 503 and 429.
	RetryAfter string `json:"retry_after" default:"2s"`

	// FinalizeGrace waits for late events after room_finished.
	FinalizeGrace string `json:"finalize_grace" default:"10s"`
	// EgressWait: how long, from the receipt of room_finished, the report
	// waits (beyond FinalizeGrace) for every egress of the room to reach a
	// terminal status. The report goes out once the last one ended (and the
	// grace passed), or at this deadline with the running ones listed with
	// their last status and the anomaly egress_never_ended; their later
	// egress_ended still reaches Hooks.OnEgressEnded and the stored report.
	// "0s" does not wait.
	EgressWait string `json:"egress_wait" default:"5m"`
	// MaxSessionAge closes sessions that never got room_finished as expired.
	MaxSessionAge string `json:"max_session_age" default:"24h"`
	// RecordTTL is how long a room's record, its name and session index
	// entries and its Beluga mapping live after their last write. Empty:
	// the larger of 7 days and 2 × (max_session_age + dedupe_window). It
	// must exceed max_session_age + dedupe_window: an open room is closed,
	// and its late duplicates recognised, before its state expires.
	RecordTTL string `json:"record_ttl"`
	// MaxAttempts of a failing processing step or hook before dead-lettering.
	MaxAttempts int `json:"max_attempts" default:"8" min:"1"`
	// Workers process events concurrently (per-room order is kept).
	Workers int `json:"workers" default:"8" min:"1"`

	// Correlation maps rooms to backend sessions: "room_name" (default),
	// "metadata:KEY" (a key of the room's JSON metadata) or
	// "template:call-{session}". WithCorrelator overrides it.
	Correlation string `json:"correlation" default:"room_name"`
	// DeleteBelugaSessions deletes the Beluga session after its final report.
	DeleteBelugaSessions bool `json:"delete_beluga_sessions"`
	// BelugaAgentID is the agent id given to SessionService.Create.
	BelugaAgentID string `json:"beluga_agent_id" default:"livekit"`

	// AdminToken protects the sessions, DLQ, reconcile and metrics
	// endpoints; without it they answer local clients only (see AdminGuard).
	AdminToken string `json:"admin_token"`

	// Dev is development mode, as livekit-server --dev: API secrets shorter
	// than 32 bytes are accepted (the dev key is devkey/secret).
	Dev bool `json:"dev"`
	// MaxConnections caps the concurrent connections of `lkwebhook serve`;
	// beyond it a connection is answered 503 with Retry-After and closed.
	MaxConnections int `json:"max_connections" default:"1024" min:"1"`
}

// minSecretLength is the shortest API secret accepted outside Dev, as
// livekit-server requires.
const minSecretLength = 32

// DefaultConfig returns a Config with every default applied.
func DefaultConfig() Config { return Config{}.withDefaults() }

// withDefaults fills every zero field from its default tag, the single
// source of defaults (Beluga's loaders read the same tags), so that a Config
// built in Go without them works too.
func (c Config) withDefaults() Config {
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		def, ok := t.Field(i).Tag.Lookup("default")
		f := v.Field(i)
		if !ok || !f.IsZero() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(def)
		case reflect.Int, reflect.Int64:
			n, err := strconv.ParseInt(def, 10, 64)
			if err != nil {
				panic("livekitwebhook: bad default tag on " + t.Field(i).Name)
			}
			f.SetInt(n)
		}
	}
	return c
}

// LoadConfig reads a JSON file with Beluga's config.Load, then overrides it
// from the environment (BELUGA_LIVEKIT_WEBHOOK_*) and the LiveKit key
// variables (see LoadConfigFromEnv).
func LoadConfig(path string) (Config, error) {
	cfg, err := config.Load[Config](path)
	if err != nil {
		return cfg, err
	}
	if err := config.MergeEnv(&cfg, envPrefix); err != nil {
		return cfg, err
	}
	cfg.mergeLiveKitEnv()
	return cfg, nil
}

// LoadConfigFromEnv builds a Config from defaults and BELUGA_LIVEKIT_WEBHOOK_*
// variables, then adds the keys livekit-server itself reads:
// LIVEKIT_API_KEY + LIVEKIT_API_SECRET, and LIVEKIT_KEYS ("key: secret"
// lines). Keys already configured are kept.
func LoadConfigFromEnv() (Config, error) {
	cfg, err := config.LoadFromEnv[Config](envPrefix)
	if err != nil {
		return cfg, err
	}
	cfg.mergeLiveKitEnv()
	return cfg, nil
}

// mergeLiveKitEnv adds keys from the variables livekit-server itself reads:
// LIVEKIT_API_KEY + LIVEKIT_API_SECRET, and LIVEKIT_KEYS ("key: secret"
// lines). Keys already configured are kept.
func (c *Config) mergeLiveKitEnv() {
	if c.APIKey == "" && c.APISecret == "" {
		c.APIKey, c.APISecret = os.Getenv("LIVEKIT_API_KEY"), os.Getenv("LIVEKIT_API_SECRET")
	}
	if ks := os.Getenv("LIVEKIT_KEYS"); ks != "" {
		if c.Keys != "" {
			c.Keys += "\n"
		}
		c.Keys += ks
	}
}

// durations is Config's duration fields, parsed.
type durations struct {
	leeway, dedupe, accept, retryAfter, grace, maxAge, recordTTL time.Duration
	egressWait                                                   time.Duration
}

// defaultRecordTTL is record_ttl when unset: a week, or twice what a room
// and its duplicates can last if that is longer.
func defaultRecordTTL(maxAge, dedupe time.Duration) time.Duration {
	return max(7*24*time.Hour, 2*(maxAge+dedupe))
}

// durations parses the duration fields of a Config with defaults applied.
func (c Config) durations() (durations, error) {
	var d durations
	var errs []error
	parse := func(name, s string, dst *time.Duration) {
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration like \"30s\"", name, s))
			return
		}
		*dst = v
	}
	parse("leeway", c.Leeway, &d.leeway)
	parse("dedupe_window", c.DedupeWindow, &d.dedupe)
	parse("accept_timeout", c.AcceptTimeout, &d.accept)
	parse("retry_after", c.RetryAfter, &d.retryAfter)
	parse("finalize_grace", c.FinalizeGrace, &d.grace)
	parse("max_session_age", c.MaxSessionAge, &d.maxAge)
	parse("egress_wait", c.EgressWait, &d.egressWait)
	d.recordTTL = defaultRecordTTL(d.maxAge, d.dedupe)
	if c.RecordTTL != "" {
		parse("record_ttl", c.RecordTTL, &d.recordTTL)
		if len(errs) == 0 && d.recordTTL <= d.maxAge+d.dedupe {
			errs = append(errs, fmt.Errorf("record_ttl: %s must exceed max_session_age + dedupe_window (%s)",
				d.recordTTL, d.maxAge+d.dedupe))
		}
	}
	return d, errors.Join(errs...)
}

// keySet merges every configured key into one map (key -> secret).
func (c Config) keySet() (map[string]string, error) {
	keys := map[string]string{}
	if c.APIKey != "" || c.APISecret != "" {
		if c.APIKey == "" || c.APISecret == "" {
			return nil, errors.New("api_key and api_secret must be set together")
		}
		keys[c.APIKey] = c.APISecret
	}
	add := func(src, text string) error {
		m := map[string]string{}
		if err := yaml.Unmarshal([]byte(text), &m); err != nil {
			return fmt.Errorf("%s: expected \"key: secret\" lines", src)
		}
		for k, v := range m {
			if k == "" || v == "" {
				return fmt.Errorf("%s: empty key or secret", src)
			}
			keys[k] = v
		}
		return nil
	}
	if strings.TrimSpace(c.Keys) != "" {
		if err := add("keys", c.Keys); err != nil {
			return nil, err
		}
	}
	if c.KeyFile != "" {
		b, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("key_file: %w", err)
		}
		if err := add("key_file "+c.KeyFile, string(b)); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// checkSecrets refuses secrets shorter than minSecretLength outside Dev,
// naming the key, never the secret.
func (c Config) checkSecrets(keys map[string]string) error {
	if c.Dev {
		return nil
	}
	var short []string
	for k, s := range keys {
		if len(s) < minSecretLength {
			short = append(short, k)
		}
	}
	if len(short) == 0 {
		return nil
	}
	slices.Sort(short)
	which := fmt.Sprintf("key %q", short[0])
	if len(short) > 1 {
		which = fmt.Sprintf("keys %q", short)
	}
	return fmt.Errorf("%w: the secret of %s has fewer than %d characters (livekit-server refuses such keys too); "+
		"use a longer secret, or dev mode (dev: true, serve --dev) for local work", ErrSecretTooShort, which, minSecretLength)
}

// eventSet parses Events; nil means all.
func (c Config) eventSet() map[string]bool {
	if strings.TrimSpace(c.Events) == "" {
		return nil
	}
	set := map[string]bool{}
	for _, e := range strings.Split(c.Events, ",") {
		if e = strings.TrimSpace(e); e != "" {
			set[e] = true
		}
	}
	return set
}

// AgentToken mints the room-join token an agent needs to join room as
// identity (Beluga's livekit transport requires one): kind agent, valid six
// hours, signed with api_key when set, else with the first of the
// configured keys in name order (keys, key_file).
func (c Config) AgentToken(room, identity string) (string, error) {
	keys, err := c.keySet()
	if err != nil {
		return "", err
	}
	key := c.APIKey
	if key == "" {
		names := slices.Sorted(maps.Keys(keys))
		if len(names) == 0 {
			return "", errors.New("livekitwebhook: no key to mint an agent token: set api_key/api_secret, keys or key_file")
		}
		key = names[0]
	}
	return auth.NewAccessToken(key, keys[key]).
		SetIdentity(identity).
		SetKind(livekit.ParticipantInfo_AGENT).
		SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: room}).
		SetValidFor(6 * time.Hour).
		ToJWT()
}
