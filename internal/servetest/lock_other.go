//go:build !unix

package servetest

// lockFile does nothing here: concurrent builds are only slower.
func lockFile(string) (func(), error) { return func() {}, nil }
