package testport

import "testing"

// TestFree: ports are below the ephemeral range and not handed out twice.
func TestFree(t *testing.T) {
	top := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		port, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if port < lowest || port >= top {
			t.Fatalf("port %d outside [%d, %d)", port, lowest, top)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
}
