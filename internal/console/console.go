package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a Console. Only Path and Access matter; the rest have
// defaults.
type Options struct {
	// Path is where the console is served (no trailing slash).
	Path string
	// Token is the admin token: with it, a login form sets a cookie; the
	// bearer header is accepted too.
	Token string
	// Access is the admin rule of the other admin endpoints: 0 when req may
	// read them, else a status and a reason.
	Access func(req *http.Request) (status int, reason string)
	// TraceURL links a call's trace id: "{trace_id}" is replaced. Empty:
	// the id is shown without a link.
	TraceURL string
	// Projects are the receiver's projects (names), sorted: with several,
	// the calls page offers a project filter.
	Projects []string
	// PageSize is the ended calls per page (default 50).
	PageSize int
	// ScanWindow bounds how many stored reports one filtered page reads
	// (default 500): a filter that matches rarely shows what it found in
	// that window and a link to search on.
	ScanWindow int
	Logger     *slog.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Console serves the pages. Create it with New.
type Console struct {
	src   Source
	o     Options
	g     *guard
	pages map[string]*template.Template
	files http.Handler
}

// New builds a Console over src.
func New(src Source, o Options) (*Console, error) {
	o.Path = strings.TrimSuffix(o.Path, "/")
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	if o.ScanWindow <= 0 {
		o.ScanWindow = 500
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Console{src: src, o: o, g: newGuard(o.Token, o.Access), pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"ts": fmtTime, "dur": fmtSeconds, "bytes": fmtBytes, "clock": fmtClock, "day": fmtDay, "ago": func(t time.Time) string { return fmtAgo(o.Now(), t) },
		"path": func() string { return o.Path }, "join": strings.Join,
	}
	for _, name := range []string{"calls", "call", "deadletters", "intake", "login", "denied"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		c.pages[name] = t
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c.files = http.StripPrefix(o.Path+"/static/", http.FileServer(http.FS(sub)))
	return c, nil
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	CSRF    string
	Login   bool // a login cookie can be cleared (a token is configured)
	Path    string
	Flash   string
	FlashOK bool
	Data    any
}

// ServeHTTP routes the console's paths.
func (c *Console) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	// No inline script or style may run, whatever a page holds.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	rest := strings.TrimPrefix(req.URL.Path, c.o.Path)
	if rest == "/login" {
		c.serveLogin(w, req)
		return
	}
	if strings.HasPrefix(rest, "/static/") {
		h.Set("Cache-Control", "private, max-age=300")
		c.files.ServeHTTP(w, req)
		return
	}
	if ok, status, reason := c.g.allowed(req); !ok {
		c.deny(w, req, status, reason)
		return
	}
	if req.Method == http.MethodPost {
		req.Body = http.MaxBytesReader(w, req.Body, 2<<20)
		if !c.g.postOK(req) {
			c.write(w, http.StatusForbidden, "denied", page{Title: "Refused", Data: "This form is out of date or came from another site (CSRF check). Reload the page and try again."})
			return
		}
	}
	switch {
	case rest == "" || rest == "/":
		c.get(w, req, c.serveCalls)
	case rest == "/call":
		c.get(w, req, c.serveCall)
	case rest == "/deadletters":
		c.get(w, req, c.serveDeadLetters)
	case rest == "/deadletters/replay":
		c.post(w, req, c.serveReplay)
	case rest == "/intake":
		c.get(w, req, c.serveIntake)
	case rest == "/intake/verify":
		c.post(w, req, c.serveVerify)
	case rest == "/logout":
		c.post(w, req, func(w http.ResponseWriter, req *http.Request) {
			clearLogin(w, req, c.o.Path)
			http.Redirect(w, req, c.o.Path+"/login", http.StatusSeeOther)
		})
	default:
		http.NotFound(w, req)
	}
}

func (c *Console) get(w http.ResponseWriter, req *http.Request, f http.HandlerFunc) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f(w, req)
}

func (c *Console) post(w http.ResponseWriter, req *http.Request, f http.HandlerFunc) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f(w, req)
}

// deny answers a request the admin rule refuses: with a token, a browser
// is sent to the login form; anything else gets the status.
func (c *Console) deny(w http.ResponseWriter, req *http.Request, status int, reason string) {
	if status == http.StatusUnauthorized && req.Method == http.MethodGet && c.o.Token != "" &&
		strings.Contains(req.Header.Get("Accept"), "text/html") {
		http.Redirect(w, req, c.o.Path+"/login", http.StatusSeeOther)
		return
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lkwebhook"`)
	}
	msg := "Refused (" + reason + ")."
	if status == http.StatusForbidden {
		msg = "The console answers local requests only when no admin token is configured (" + reason + "). Set admin_token to use it from elsewhere."
	} else if c.o.Token != "" {
		msg = "Log in with the admin token."
	}
	c.write(w, status, "denied", page{Title: "Refused", Data: msg})
}

func (c *Console) serveLogin(w http.ResponseWriter, req *http.Request) {
	p := page{Title: "Log in", Data: c.o.Token != ""}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		c.write(w, http.StatusOK, "login", p)
	case http.MethodPost:
		req.Body = http.MaxBytesReader(w, req.Body, 64<<10)
		if !sameOrigin(req) {
			c.write(w, http.StatusForbidden, "denied", page{Title: "Refused", Data: "Login from another site refused."})
			return
		}
		if !c.g.loginOK(req.PostFormValue("token")) {
			p.Flash = "That is not the admin token."
			c.write(w, http.StatusUnauthorized, "login", p)
			return
		}
		c.g.setLogin(w, req, c.o.Path)
		http.Redirect(w, req, c.o.Path+"/", http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// write renders a page (or, with ?fragment=1, only its live part).
func (c *Console) write(w http.ResponseWriter, status int, name string, p page) {
	p.Path, p.Login = c.o.Path, c.o.Token != ""
	if name != "login" && name != "denied" {
		// Only pages of an allowed request carry the CSRF token.
		p.CSRF = c.g.csrf()
	}
	if p.Nav == "" {
		p.Nav = name
	}
	var buf bytes.Buffer
	buf.Grow(32 << 10)
	tmpl := "layout.html"
	if fr, ok := p.Data.(fragmenter); ok && fr.fragment() {
		tmpl = "live"
	}
	if err := c.pages[name].ExecuteTemplate(&buf, tmpl, p); err != nil {
		c.o.Logger.Error("console page failed", "page", name, "error", err.Error())
		http.Error(w, "page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type fragmenter interface{ fragment() bool }

// unavailable renders a store failure.
func (c *Console) unavailable(w http.ResponseWriter, err error) {
	c.o.Logger.Error("console read failed", "error", err.Error())
	c.write(w, http.StatusServiceUnavailable, "denied", page{Title: "Unavailable", Data: "The event store cannot be read right now. Try again in a moment."})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func ctxOf(req *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(req.Context(), 10*time.Second)
}
