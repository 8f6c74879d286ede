package livekitwebhook

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/lookatitude/beluga-ai/v2/core"
	"github.com/lookatitude/beluga-ai/v2/server"
)

// sessionRouteSpellings are the ways routers spell "every path under
// SessionsPath/": gin's named catch-all, the bare "*" of chi, echo and
// fiber, and net/http's trailing-slash prefix (stdlib, huma). Mount offers
// each one to the adapter in this order (gin refuses a catch-all after
// "/"), keeping those it accepts: a router takes the others as literal paths
// nobody requests, or refuses them. This needs no knowledge of the adapter's
// type, so it works through server.ApplyMiddleware wrappers too. The
// handler reads the id from the request path, not from router parameters.
var sessionRouteSpellings = []string{"/*id", "/*", "/"}

// Mount attaches every path of Routes to a Beluga server adapter with
// RegisterHandler: the webhook path, the sessions API and the DLQ admin
// API. It works with any adapter that serves raw http.Handlers (stdlib,
// chi, echo, gin, fiber, huma, connect), wrapped by server.ApplyMiddleware
// or not; every handler checks its own method, so routers that register a
// path for all methods are fine.
//
// One session is served at SessionsPath+"/{id}" on each of these adapters
// (see sessionRouteSpellings), and at SessionsPath+"?id={id}" on every
// adapter: use the query form with a router of your own whose syntax Mount
// does not know, or for ids containing "/".
//
// An adapter that cannot serve HTTP handlers (gRPC) makes Mount return a
// core.Error (code ErrInvalidInput) wrapping the adapter's error; serve
// Routes on a separate net/http server in that case. A panic raised by a
// router while registering a required path (a conflicting route) is
// returned as an error too.
//
// Mount does not start the receiver: call Start before or after, but before
// LiveKit posts (intake answers 503 until then), or use AutoWire.
func (r *Receiver) Mount(a server.ServerAdapter) error {
	if a == nil {
		return core.NewError("livekitwebhook.mount", core.ErrInvalidInput, "server adapter is nil", nil)
	}
	routes := r.Routes()
	// The sessions API and the console serve every path under their base.
	subtrees := map[string]http.Handler{}
	for _, base := range []string{strings.TrimSuffix(r.cfg.SessionsPath, "/"), strings.TrimSuffix(r.cfg.ConsolePath, "/")} {
		subtrees[base] = routes[base+"/"]
		delete(routes, base+"/")
	}
	paths := make([]string, 0, len(routes))
	for p := range routes {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if err := register(a, p, routes[p]); err != nil {
			msg := fmt.Sprintf("server adapter %T cannot serve the HTTP handler of %q"+
				" (an adapter serving no raw HTTP handlers, such as gRPC, cannot host the receiver:"+
				" serve Routes() on a net/http server instead)", a, p)
			return core.NewError("livekitwebhook.mount", core.ErrInvalidInput, msg, err)
		}
	}
	for _, base := range slices.Sorted(maps.Keys(subtrees)) {
		for _, s := range sessionRouteSpellings {
			// Optional: a refusal only means this router spells it otherwise.
			if err := register(a, base+s, subtrees[base]); err != nil {
				r.log.Debug("router refused a route spelling", "path", base+s, "error", err.Error())
			}
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
