package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// fixtureDir holds webhook requests captured from a real livekit-server.
// The version in the name is the server that produced them.
const fixtureDir = "../testdata/livekit-v1.13.5"

// Fixture is one captured webhook request, as stored in fixtureDir/NN-<event>.json.
type Fixture struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Headers as received; multiple values of one header are joined with ", ".
	// Host is included although Go keeps it outside Request.Header.
	Headers map[string]string `json:"headers"`
	// Body is the raw request body, byte for byte (it is valid UTF-8 JSON).
	Body string `json:"body"`
	// ReceivedAtUnix is when the request arrived: use it as the fixed clock
	// when verifying the token (exp = issue time + 5 min).
	ReceivedAtUnix int64 `json:"received_at_unix"`
}

// loadedFixture is a Fixture and its file name.
type loadedFixture struct {
	Name string
	Fixture
}

// loadFixtures reads every NN-*.json fixture in dir, in file-name order.
func loadFixtures(dir string) ([]loadedFixture, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9]-*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []loadedFixture
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var f Fixture
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, loadedFixture{Name: filepath.Base(p), Fixture: f})
	}
	return out, nil
}

// jwtClaims decodes the payload of a JWT without verifying it.
func jwtClaims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("token has %d parts, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return claims, nil
}

// jwtHeader decodes the header of a JWT without verifying it.
func jwtHeader(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("token has %d parts, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	return h, nil
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
