package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// Names within the bound keep the form they had before it: data written
// then is found under the same keys and subjects.
func TestNamesUnchangedWithinBound(t *testing.T) {
	tokens := map[string]string{
		"":                       "_",
		"RM_abc123":              "RM_abc123",
		"call.42 é":              "call_42___",
		strings.Repeat("a", 256): strings.Repeat("a", 256),
	}
	for in, want := range tokens {
		if got := Token(in); got != want {
			t.Errorf("Token(%.20q) = %.40q, want %.40q", in, got, want)
		}
	}
	keys := map[string]string{
		"":                         "x-",
		"RM_abc123":                "RM_abc123",
		"call.42":                  "x-63616c6c2e3432",
		"x-1":                      "x-782d31",
		strings.Repeat("a", 256):   strings.Repeat("a", 256),
		strings.Repeat("a.", 63):   "x-" + strings.Repeat("612e", 63), // 254 bytes
		strings.Repeat("é", 63):    "x-" + strings.Repeat("c3a9", 63),
		"name:" + "RM_" + "abcdef": "x-6e616d653a524d5f616263646566",
	}
	for in, want := range keys {
		if got := Key(in); got != want {
			t.Errorf("Key(%.20q) = %.40q, want %.40q", in, got, want)
		}
		if _, ok := LegacyKey(in); ok {
			t.Errorf("LegacyKey(%.20q): a name within the bound has none", in)
		}
	}
}

// Beyond the bound: at most MaxNameLen bytes, a readable prefix, the same
// for the same name (pinned: replicas and restarts must agree), different
// for names that share the prefix.
func TestNamesBoundedBeyond(t *testing.T) {
	long := []string{
		strings.Repeat("R", 257),
		strings.Repeat("R", 5000),
		strings.Repeat("a.", 1050),
		strings.Repeat("a.", 64), // 128 bytes: hex-encoded past the bound
		strings.Repeat("x-", 3000),
		strings.Repeat("é", 200_000),
	}
	seenTok, seenKey := map[string]string{}, map[string]string{}
	for _, s := range long {
		tok, key := Token(s), Key(s)
		if len(key) > MaxNameLen || len(tok) > MaxNameLen {
			t.Errorf("%d-byte name: token %d bytes, key %d bytes, want at most %d", len(s), len(tok), len(key), MaxNameLen)
		}
		if tok != Token(s) || key != Key(s) {
			t.Errorf("%d-byte name: not deterministic", len(s))
		}
		if Token(tok) != tok {
			t.Errorf("Token is not idempotent on %.40q", tok)
		}
		if safeToken(tok) != tok || safeToken(key) != key {
			t.Errorf("unsafe characters in %.40q / %.40q", tok, key)
		}
		if len(s) > MaxNameLen && !strings.HasPrefix(tok, safeToken(s[:64])) {
			t.Errorf("token %.40q does not start with the name", tok)
		}
		if o, dup := seenKey[key]; dup {
			t.Errorf("key %q for two names (%d and %d bytes)", key, len(o), len(s))
		}
		if o, dup := seenTok[tok]; dup {
			t.Errorf("token %q for two names (%d and %d bytes)", tok, len(o), len(s))
		}
		seenTok[tok], seenKey[key] = s, s
	}
	// Names that differ only past the prefix.
	a, b := strings.Repeat("R", 4000)+"a", strings.Repeat("R", 4000)+"b"
	if Token(a) == Token(b) || Key(a) == Key(b) {
		t.Error("names differing past the prefix share a token or key")
	}
	// Pinned: a change here orphans every entry stored under a bounded key.
	const (
		wantTokHash = "-0b530f59c51926f2baf61e0139116f58" // sha256("R" × 5000), 128 bits
		wantKeyHash = "-8fce33e9b2e2bf4199f6e4cd26058b6b" // sha256("a." × 1050)
	)
	wantTok := strings.Repeat("R", MaxNameLen-len(wantTokHash)) + wantTokHash
	wantKey := "x-" + strings.Repeat("a_", (MaxNameLen-2-len(wantKeyHash))/2) + "a" + wantKeyHash
	if got := Token(strings.Repeat("R", 5000)); got != wantTok {
		t.Errorf("Token(5000 × R) = %q, want %q", got, wantTok)
	}
	if got := Key(strings.Repeat("a.", 1050)); got != wantKey {
		t.Errorf("Key(1050 × a.) = %q, want %q", got, wantKey)
	}
}

// A bounded key never equals the key of another name, bounded or not: a
// name may be chosen to be the bounded key of another.
func TestBoundedKeyNeverALegacyKey(t *testing.T) {
	for _, s := range []string{strings.Repeat("R", 300), strings.Repeat("a.", 200), strings.Repeat("x-", 200)} {
		k := Key(s)
		if Key(k) == k {
			t.Errorf("name %.30q… has the key of a %d-byte name", k, len(s))
		}
		rest, ok := strings.CutPrefix(k, "x-")
		if !ok || !strings.ContainsFunc(rest, func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) }) {
			t.Errorf("bounded key %.40q is in the legacy form (x- and hex)", k)
		}
	}
}

// Entries of long names written before keys were bounded are found at
// their legacy key, unless that key is too long to read safely; the bounded
// key wins once written.
func TestLookupFallsBackToLegacyKey(t *testing.T) {
	e := openTest(t, Config{})
	ctx := context.Background()
	kv := e.names

	name := strings.Repeat("a.", 200) // legacy key: 802 bytes
	legacy, ok := LegacyKey(name)
	if !ok || legacy != "x-"+strings.Repeat("612e", 200) {
		t.Fatalf("LegacyKey = %.40q %v", legacy, ok)
	}
	if _, err := kv.Put(ctx, "room."+legacy, []byte("RM_old")); err != nil {
		t.Fatal(err)
	}
	got, err := Lookup(ctx, kv, "room.", name)
	if err != nil || string(got.Value()) != "RM_old" || got.Key() != "room."+legacy {
		t.Fatalf("Lookup before the bounded key is written: %v %v", got, err)
	}
	if k, err := ResolveKey(ctx, kv, "room.", name); err != nil || k != "room."+legacy {
		t.Fatalf("ResolveKey = %.40q %v, want the legacy key", k, err)
	}
	if _, err := kv.Put(ctx, "room."+Key(name), []byte("RM_new")); err != nil {
		t.Fatal(err)
	}
	if got, err := Lookup(ctx, kv, "room.", name); err != nil || string(got.Value()) != "RM_new" {
		t.Fatalf("Lookup after the bounded key is written: %v %v", got, err)
	}
	if k, err := ResolveKey(ctx, kv, "room.", name); err != nil || k != "room."+Key(name) {
		t.Fatalf("ResolveKey = %.40q %v, want the bounded key", k, err)
	}

	// Absent everywhere: the bounded key.
	other := strings.Repeat("b.", 200)
	if _, err := Lookup(ctx, kv, "room.", other); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("Lookup of an unknown name: %v", err)
	}
	if k, err := ResolveKey(ctx, kv, "room.", other); err != nil || k != "room."+Key(other) {
		t.Fatalf("ResolveKey of an unknown name = %.40q %v", k, err)
	}

	// A legacy key past MaxLegacyKeyLen (it could be written up to the
	// control line) is not read: the connection must stay up.
	huge := strings.Repeat("c.", 600) // legacy key: 2402 bytes
	hugeLegacy := "x-" + strings.Repeat("632e", 600)
	if _, err := kv.Put(ctx, "room."+hugeLegacy, []byte("RM_huge")); err != nil {
		t.Fatal(err)
	}
	if _, ok := LegacyKey(huge); ok {
		t.Fatal("a 2402-byte legacy key is read")
	}
	if _, err := Lookup(ctx, kv, "room.", huge); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("Lookup of a huge name: %v", err)
	}
	if !e.Ready() {
		t.Fatal("engine not ready after the lookups")
	}
}
