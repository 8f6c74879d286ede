package livekitwebhook

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/server"
)

// Package paths of the Beluga adapters whose routers match paths exactly
// (no prefix match on a trailing "/"). Mount adds a catch-all route for the
// per-session path on them; it detects them by reflection so that this
// package does not import the routers.
const (
	belugaChiAdapter  = "github.com/lookatitude/beluga-ai/v2/server/adapters/chi"
	belugaEchoAdapter = "github.com/lookatitude/beluga-ai/v2/server/adapters/echo"
)

// Mount attaches every path of Routes to a Beluga server adapter with
// RegisterHandler: the webhook path, the sessions API and the DLQ admin
// API. It works with any adapter that serves raw http.Handlers (stdlib,
// chi, echo, gin, fiber, huma, connect); every handler checks its own
// method, so routers that register a path for all methods are fine.
//
// On net/http-based routers "SessionsPath/" matches every session id by
// prefix. Chi and echo match exactly, so Mount also registers
// "SessionsPath/*" there; on other exact-match routers (gin, fiber) only the
// list route SessionsPath is reachable, not SessionsPath/{id}.
//
// The gRPC adapter cannot serve HTTP handlers: Mount returns a core.Error
// (code ErrInvalidInput) wrapping the adapter's error; serve Routes on a
// separate net/http server in that case. A panic raised by a router while
// registering (a conflicting route) is returned as an error too.
//
// Mount does not start the receiver: call Start before or after, but before
// LiveKit posts (intake answers 503 until then), or use AutoWire.
func (r *Receiver) Mount(a server.ServerAdapter) error {
	if a == nil {
		return core.NewError("livekitwebhook.mount", core.ErrInvalidInput, "server adapter is nil", nil)
	}
	routes := r.Routes()
	paths := make([]string, 0, len(routes)+1)
	for p := range routes {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if exactMatchRouter(a) {
		sessions := strings.TrimSuffix(r.cfg.SessionsPath, "/")
		if h, ok := routes[sessions+"/"]; ok {
			routes[sessions+"/*"] = h
			paths = append(paths, sessions+"/*")
		}
	}
	for _, p := range paths {
		if err := register(a, p, routes[p]); err != nil {
			msg := fmt.Sprintf("server adapter %T cannot serve the HTTP handler of %q", a, p)
			if strings.HasSuffix(adapterPkg(a), "/grpc") {
				msg += " (the gRPC adapter serves no raw HTTP handlers: serve Routes() on a net/http server instead)"
			}
			return core.NewError("livekitwebhook.mount", core.ErrInvalidInput, msg, err)
		}
	}
	return nil
}

// register calls RegisterHandler, turning a router panic into an error.
func register(a server.ServerAdapter, path string, h http.Handler) (err error) {
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("RegisterHandler(%q) panicked: %v", path, rec)
		}
	}()
	return a.RegisterHandler(path, h)
}

// exactMatchRouter reports whether a is a Beluga adapter whose router needs
// an explicit wildcard to match SessionsPath/{id}.
func exactMatchRouter(a server.ServerAdapter) bool {
	switch adapterPkg(a) {
	case belugaChiAdapter, belugaEchoAdapter:
		return true
	}
	return false
}

func adapterPkg(a server.ServerAdapter) string {
	t := reflect.TypeOf(a)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath()
}
