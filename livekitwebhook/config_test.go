package livekitwebhook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
)

func TestConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	if c.Path != "/voice/livekit/webhooks" || c.MaxBodyBytes != 1<<20 || c.Leeway != "60s" ||
		c.DedupeWindow != "24h" || c.FinalizeGrace != "10s" || c.MaxAttempts != 8 || c.DataDir != "" {
		t.Fatalf("defaults %+v", c)
	}
	d, err := c.durations()
	if err != nil || d.leeway != time.Minute || d.dedupe != 24*time.Hour || d.grace != 10*time.Second || d.maxAge != 24*time.Hour {
		t.Fatalf("durations %+v %v", d, err)
	}
}

func TestLoadConfigFromEnv(t *testing.T) {
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_FINALIZE_GRACE", "3s")
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_MAX_BODY_BYTES", "4096")
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_EVENTS", "room_started,room_finished")
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_NATS_URL", "nats://127.0.0.1:4222")
	t.Setenv("BELUGA_LIVEKIT_WEBHOOK_ENABLED", "true")
	t.Setenv("LIVEKIT_API_KEY", "k1")
	t.Setenv("LIVEKIT_API_SECRET", "s1")
	t.Setenv("LIVEKIT_KEYS", "k2: s2\nk3: s3")
	c, err := LoadConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.FinalizeGrace != "3s" || c.MaxBodyBytes != 4096 || c.NatsURL != "nats://127.0.0.1:4222" || !c.Enabled || c.Leeway != "60s" {
		t.Fatalf("config %+v", c)
	}
	keys, err := c.keySet()
	if err != nil || len(keys) != 3 || keys["k1"] != "s1" || keys["k3"] != "s3" {
		t.Fatalf("keys %v %v", keys, err)
	}
	if ev := c.eventSet(); len(ev) != 2 || !ev["room_finished"] {
		t.Fatalf("events %v", ev)
	}
}

func TestLoadConfigJSONAndKeyFile(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "keys.yaml")
	if err := os.WriteFile(kf, []byte("filekey: filesecret-0123456789abcdefghijklmnop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cf := filepath.Join(dir, "c.json")
	js := `{"key_file": "` + kf + `", "leeway": "90s", "dedupe_window": "48h", "correlation": "template:call-{session}"}`
	if err := os.WriteFile(cf, []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(cf)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.durations()
	if err != nil || d.leeway != 90*time.Second || d.dedupe != 48*time.Hour || c.Path != "/voice/livekit/webhooks" {
		t.Fatalf("%+v %+v %v", c, d, err)
	}
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if sid, ok, _ := r.correlator.Correlate(t.Context(), RoomInfo{Name: "call-99"}); !ok || sid != "99" {
		t.Fatalf("template correlator: %q %v", sid, ok)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"no keys":          func(c *Config) { c.APIKey, c.APISecret = "", "" },
		"half a key":       func(c *Config) { c.APISecret = "" },
		"bad duration":     func(c *Config) { c.FinalizeGrace = "ten seconds" },
		"bad keys text":    func(c *Config) { c.Keys = "[not, a, map]" },
		"bad correlation":  func(c *Config) { c.Correlation = "magic" },
		"bad template":     func(c *Config) { c.Correlation = "template:no-placeholder" },
		"missing key file": func(c *Config) { c.KeyFile = "/nonexistent/keys.yaml" },
	} {
		c := DefaultConfig()
		c.APIKey, c.APISecret = testKey, testSecret
		mut(&c)
		_, err := New(c)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Errorf("%s: error leaks the secret", name)
		}
	}
}

func TestCorrelators(t *testing.T) {
	ctx := t.Context()
	md := MetadataCorrelator("session_id")
	for _, c := range []struct {
		meta string
		want string
		ok   bool
	}{
		{`{"session_id":"s-1"}`, "s-1", true},
		{`{"session_id":42}`, "42", true},
		{`{"other":"x"}`, "", false},
		{`not json`, "", false},
		{``, "", false},
	} {
		got, ok, err := md.Correlate(ctx, RoomInfo{Name: "r", Metadata: c.meta})
		if err != nil || got != c.want || ok != c.ok {
			t.Errorf("metadata %q: %q %v %v", c.meta, got, ok, err)
		}
	}
	tc, _ := TemplateCorrelator("call-{session}-x")
	if id, ok, _ := tc.Correlate(ctx, RoomInfo{Name: "call-5-x"}); !ok || id != "5" {
		t.Errorf("template: %q %v", id, ok)
	}
	if _, ok, _ := tc.Correlate(ctx, RoomInfo{Name: "lobby"}); ok {
		t.Error("template matched lobby")
	}
}

// AgentToken signs with api_key, else with the first configured key by
// name, for an agent of the given identity that may join only room.
func TestAgentToken(t *testing.T) {
	long := strings.Repeat("s", 32)
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantKey string
	}{
		{"api_key", Config{APIKey: "APIone", APISecret: long + "1", Keys: "APIa: " + long + "2"}, "APIone"},
		{"keys, first by name", Config{Keys: "APIz: " + long + "3\nAPIb: " + long + "4"}, "APIb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := tc.cfg.AgentToken("call-7", "beluga-agent")
			if err != nil {
				t.Fatal(err)
			}
			keys, _ := tc.cfg.keySet()
			v, err := auth.ParseAPIToken(tok)
			if err != nil {
				t.Fatal(err)
			}
			if v.APIKey() != tc.wantKey {
				t.Fatalf("signed by %q, want %q", v.APIKey(), tc.wantKey)
			}
			_, grants, err := v.Verify(keys[tc.wantKey])
			if err != nil {
				t.Fatalf("does not verify with the key's secret: %v", err)
			}
			if grants.Identity != "beluga-agent" || grants.Kind != "agent" || grants.Video == nil ||
				!grants.Video.RoomJoin || grants.Video.Room != "call-7" {
				t.Fatalf("grants %+v video %+v", grants, grants.Video)
			}
		})
	}
	if _, err := (Config{}).AgentToken("call-7", "a"); err == nil {
		t.Fatal("a token without any key")
	}
}
