package livekitwebhook

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Routes returns every path the receiver serves and its handler: the webhook
// path, the sessions API (SessionsPath, SessionsPath?id={id} and
// SessionsPath+"/" for SessionsPath/{id}), and the DLQ
// admin API (SessionsPath's parent + "/dlq"). `lkwebhook serve` registers
// exactly these; Mount registers them too, spelling SessionsPath+"/" in
// each router's syntax.
func (r *Receiver) Routes() map[string]http.Handler {
	base := strings.TrimSuffix(r.cfg.SessionsPath, "/")
	dlq := base[:strings.LastIndex(base, "/")+1] + "dlq"
	sessions := r.adminOnly(http.HandlerFunc(r.serveSessions))
	console := strings.TrimSuffix(r.cfg.ConsolePath, "/")
	return map[string]http.Handler{
		console:         r.consoleHandler(),
		console + "/":   r.consoleHandler(),
		r.cfg.Path:      r,
		base:            sessions,
		base + "/":      sessions,
		dlq:             r.adminOnly(http.HandlerFunc(r.serveDLQ)),
		dlq + "/replay": r.adminAction(http.HandlerFunc(r.serveReplay)),
		base[:strings.LastIndex(base, "/")+1] + "reconcile": r.adminAction(http.HandlerFunc(r.serveReconcile)),
	}
}

// serveReconcile shows the latest reconciliation pass (GET) or runs one (POST).
func (r *Receiver) serveReconcile(w http.ResponseWriter, req *http.Request) {
	switch req.Method {
	case http.MethodGet:
		st, ok := r.LastReconcile()
		if !ok {
			writeJSON(w, http.StatusNotFound, refusalBody{Error: "Not Found", Reason: "no reconciliation pass yet (serve --livekit-url enables it)"})
			return
		}
		writeJSON(w, http.StatusOK, st)
	case http.MethodPost:
		st, err := r.Reconcile(req.Context())
		if err != nil {
			writeJSON(w, http.StatusNotFound, refusalBody{Error: "Not Found", Reason: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, st)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, refusalBody{Error: "Method Not Allowed", Reason: "method_not_allowed"})
	}
}

// ambiguousBody is the 409 answer to GET SessionsPath/{id} without
// ?project= when several projects have a session of that id.
type ambiguousBody struct {
	Error     string   `json:"error"`
	Reason    string   `json:"reason"`
	SessionID string   `json:"session_id"`
	Projects  []string `json:"projects"`
}

// sessionsList is the answer of GET SessionsPath.
type sessionsList struct {
	Active []Session `json:"active"`
	Ended  []Report  `json:"ended"`
}

func (r *Receiver) serveSessions(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, refusalBody{Error: "Method Not Allowed", Reason: "method_not_allowed"})
		return
	}
	base := strings.TrimSuffix(r.cfg.SessionsPath, "/")
	id := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, base), "/")
	if id == "" {
		// SessionsPath?id=: the same answer on routers that cannot route
		// SessionsPath/{id} to us, and for ids containing "/".
		id = req.URL.Query().Get("id")
	}
	ctx := req.Context()
	project := req.URL.Query().Get("project")
	if id != "" {
		s, ok, err := r.SessionByIDInProject(ctx, project, id)
		var amb *AmbiguousSessionError
		switch {
		case errors.As(err, &amb):
			writeJSON(w, http.StatusConflict, ambiguousBody{Error: "Conflict", Reason: "ambiguous_session",
				SessionID: amb.SessionID, Projects: amb.Projects})
		case err != nil:
			r.serverError(w, err)
		case !ok:
			writeJSON(w, http.StatusNotFound, refusalBody{Error: "Not Found", Reason: "unknown_session"})
		default:
			writeJSON(w, http.StatusOK, s)
		}
		return
	}
	limit := 100
	if s := req.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, refusalBody{Error: "Bad Request", Reason: "bad_limit"})
			return
		}
		limit = min(n, 10_000)
	}
	active, err := r.ActiveSessions(ctx)
	if err != nil {
		r.serverError(w, err)
		return
	}
	ended, err := r.endedSessions(ctx, limit, func(rep *Report) bool {
		return r.projects.matches(project, rep.Project, rep.APIKey)
	})
	if err != nil {
		r.serverError(w, err)
		return
	}
	// A session reported between the two reads is in both: it has ended.
	done := make(map[string]bool, len(ended))
	for _, e := range ended {
		done[e.RoomSID] = true
	}
	still := active[:0]
	for _, a := range active {
		if !done[a.RoomSID] && r.projects.matches(project, a.Project, a.APIKey) {
			still = append(still, a)
		}
	}
	writeJSON(w, http.StatusOK, sessionsList{Active: still, Ended: ended})
}

func (r *Receiver) serveDLQ(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeJSON(w, http.StatusMethodNotAllowed, refusalBody{Error: "Method Not Allowed", Reason: "method_not_allowed"})
		return
	}
	list, err := r.DeadLetters(req.Context(), 0)
	if err != nil {
		r.serverError(w, err)
		return
	}
	if list == nil {
		list = []DeadLetter{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": list})
}

func (r *Receiver) serveReplay(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, refusalBody{Error: "Method Not Allowed", Reason: "method_not_allowed"})
		return
	}
	q := req.URL.Query()
	id := q.Get("id")
	if id == "" && q.Get("all") != "true" && q.Get("all") != "1" {
		writeJSON(w, http.StatusBadRequest, refusalBody{Error: "Bad Request", Reason: "want id=EVENT_ID or all=true"})
		return
	}
	n, err := r.Replay(req.Context(), id)
	if err != nil && n == 0 && id != "" {
		writeJSON(w, http.StatusNotFound, refusalBody{Error: "Not Found", Reason: err.Error()})
		return
	}
	if err != nil {
		r.serverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

func (r *Receiver) serverError(w http.ResponseWriter, err error) {
	r.log.Error("admin request failed", "error", err.Error())
	writeJSON(w, http.StatusServiceUnavailable, refusalBody{Error: "Service Unavailable", Reason: "engine_unavailable"})
}
