package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/encoding/protojson"
)

// Explanation is a plain-language account of why a webhook request does or
// does not verify. It never contains a secret: keys are named, never shown.
type Explanation struct {
	// OK is the verdict of Verifier.Verify on the same input; Err is its
	// error (nil when OK) and Reason its label ("ok" when OK).
	OK     bool
	Err    error
	Reason string

	Alg      string // the token's alg header
	Key      string // the token's iss claim: the API key it names
	KeyKnown bool   // Key is among the configured keys

	IssuedAt  time.Time // zero when the claim is absent
	NotBefore time.Time
	ExpiresAt time.Time

	// SignatureValid: the signature verifies with the secret of Key.
	SignatureValid bool
	// SignedWith names the configured key whose secret does verify the
	// signature when it is not Key's ("" if none or not needed).
	SignedWith string

	HashClaim string // the token's sha256 claim
	BodyHash  string // base64 SHA-256 of the body as given
	HashMatch bool
	// Cause is the likely cause of a hash mismatch ("" when they match).
	// CauseConfirmed: undoing that cause reproduces the signed hash.
	Cause          string
	CauseConfirmed bool

	// Lines is the explanation, one sentence per line, ending with the
	// verdict.
	Lines []string
}

// String is the explanation as text, one line per sentence.
func (e Explanation) String() string { return strings.Join(e.Lines, "\n") + "\n" }

// Explain decodes the Authorization value (raw JWT, or with a "Bearer "
// prefix) without trusting it and tells, in plain sentences, everything that
// matters for verification at time now: the algorithm, the key it names and
// whether it is known, the validity window against leeway, whether the
// signature verifies, and whether the sha256 claim matches body (guessing
// what changed the body when it does not). The verdict is computed by
// New(keys, WithClock(now), WithLeeway(leeway)).Verify, so it always agrees
// with the receiver's.
func Explain(keys map[string]string, authorization string, body []byte, now time.Time, leeway time.Duration) Explanation {
	kp := auth.NewFileBasedKeyProviderFromMap(keys)
	_, verr := New(kp, WithClock(func() time.Time { return now }), WithLeeway(leeway)).Verify(authorization, "", body)
	e := Explanation{OK: verr == nil, Err: verr, Reason: "ok", BodyHash: BodyHash(body)}
	if verr != nil {
		e.Reason = Reason(verr)
	}
	x := explainer{e: &e, keys: keys, now: now, leeway: leeway}
	x.explain(authorization, body)
	x.verdict()
	return e
}

type explainer struct {
	e        *Explanation
	keys     map[string]string
	now      time.Time
	leeway   time.Duration
	problems int
}

func (x *explainer) say(format string, args ...any) {
	x.e.Lines = append(x.e.Lines, fmt.Sprintf(format, args...))
}

func (x *explainer) problem(format string, args ...any) {
	x.problems++
	x.say(format, args...)
}

var hexSig = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func (x *explainer) explain(authorization string, body []byte) {
	token := strings.TrimSpace(authorization)
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
		x.say("The Authorization header has a \"Bearer \" prefix; LiveKit sends the raw token, but the prefix is tolerated.")
	}
	if token == "" {
		x.problem("There is no Authorization token. Real LiveKit always sends one: the raw JWT, no \"Bearer \" prefix.")
		return
	}
	mc := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(token, mc)
	if err != nil {
		msg := "The Authorization value is not a readable JWT (" + jwtProblem(err) + ")."
		if hexSig.MatchString(token) {
			msg += " It looks like a hex HMAC of the body (an X-LiveKit-Signature value), which real LiveKit never sends."
		} else if strings.Count(token, ".") != 2 {
			msg += " A JWT has three dot-separated parts; the value may be truncated or quoted."
		}
		x.problem("%s", msg)
		return
	}

	// Algorithm.
	x.e.Alg = tok.Method.Alg()
	if tok.Method == jwt.SigningMethodHS256 {
		x.say("The token is signed with HS256, as LiveKit does.")
	} else {
		x.problem("The token is signed with %s; LiveKit only uses HS256, so it is refused.", x.e.Alg)
	}

	// Key.
	iss, _ := mc.GetIssuer()
	x.e.Key = iss
	x.e.KeyKnown = iss != "" && x.keys[iss] != ""
	switch {
	case iss == "":
		x.problem("The token has no iss claim, so there is no API key to look its secret up by.")
	case x.e.KeyKnown:
		x.say("It names API key %q, which is configured (%s).", iss, x.keyCount())
	default:
		x.problem("It names API key %q, which is not configured (%s). Add that key and its secret, or make the sender sign with a configured key.", iss, x.keyCount())
	}

	x.times(mc)
	x.signature(token, iss)
	x.hash(mc, body)
}

func (x *explainer) keyCount() string {
	names := make([]string, 0, len(x.keys))
	for k, s := range x.keys {
		if k != "" && s != "" {
			names = append(names, fmt.Sprintf("%q", k))
		}
	}
	slices.Sort(names)
	switch len(names) {
	case 0:
		return "no keys are configured"
	case 1:
		return "configured key: " + names[0]
	default:
		n := len(names)
		if n > 8 {
			names = append(names[:8], "…")
		}
		return fmt.Sprintf("%d keys configured: %s", n, strings.Join(names, ", "))
	}
}

// times reports iat, nbf and exp exactly as jwt/v5 checks them: expired when
// now >= exp+leeway, not yet valid when now+leeway < nbf; iat is not checked.
func (x *explainer) times(mc jwt.MapClaims) {
	lw := fmtLeeway(x.leeway)
	if iat, err := mc.GetIssuedAt(); err != nil {
		x.problem("The iat claim is not a number (%s).", jwtProblem(err))
	} else if iat != nil {
		x.e.IssuedAt = iat.Time
		x.say("It was issued at %s (%s).", stamp(iat.Time), relative(x.now, iat.Time))
	} else {
		x.say("It has no iat claim (older LiveKit servers do not set one).")
	}

	nbf, err := mc.GetNotBefore()
	switch {
	case err != nil:
		x.problem("The nbf claim is not a number (%s).", jwtProblem(err))
	case nbf == nil:
		x.say("It has no nbf claim.")
	default:
		x.e.NotBefore = nbf.Time
		switch {
		case x.now.Add(x.leeway).Before(nbf.Time):
			x.problem("It is not valid for another %s (nbf %s, leeway %s): the sender's clock is ahead of this one.",
				fmtDur(nbf.Time.Sub(x.now)-x.leeway), stamp(nbf.Time), lw)
		case x.now.Before(nbf.Time):
			x.say("Its nbf is %s in the future, within the leeway of %s: tolerated as clock skew.", fmtDur(nbf.Time.Sub(x.now)), lw)
		default:
			x.say("It is valid from %s.", stamp(nbf.Time))
		}
	}

	exp, err := mc.GetExpirationTime()
	switch {
	case err != nil:
		x.problem("The exp claim is not a number (%s).", jwtProblem(err))
	case exp == nil:
		x.problem("It has no exp claim; LiveKit always sets one and tokens without it are refused.")
	default:
		x.e.ExpiresAt = exp.Time
		switch {
		case !x.now.Before(exp.Time.Add(x.leeway)):
			msg := fmt.Sprintf("It expired %s ago (exp %s, leeway %s).", fmtDur(x.now.Sub(exp.Time)), stamp(exp.Time), lw)
			if !x.e.IssuedAt.IsZero() {
				msg += fmt.Sprintf(" It was valid for %s after being issued.", fmtDur(exp.Time.Sub(x.e.IssuedAt)))
			}
			msg += " A live request this late was held up or replayed; check a captured one at the time it was captured."
			x.problem("%s", msg)
		case !x.now.Before(exp.Time):
			x.say("It expired %s ago, within the leeway of %s: still accepted.", fmtDur(x.now.Sub(exp.Time)), lw)
		default:
			x.say("It expires in %s (exp %s).", fmtDur(exp.Time.Sub(x.now)), stamp(exp.Time))
		}
	}
}

// signature checks the HMAC with the named key's secret, and when that
// fails (or the key is unknown), with every other configured secret, to
// tell which key really signed. Secrets are never shown.
func (x *explainer) signature(token, iss string) {
	if x.e.Alg != jwt.SigningMethodHS256.Alg() {
		x.say("The signature was not checked: only HS256 tokens are.")
		return
	}
	if x.e.KeyKnown {
		if signedBy(token, x.keys[iss]) {
			x.e.SignatureValid = true
			x.say("The signature verifies with the secret of %q.", iss)
			return
		}
		x.problem("The signature does NOT verify with the secret configured for %q: the sender signs with a different secret under that key name.", iss)
	}
	var others []string
	for k, s := range x.keys {
		if k != iss && s != "" && signedBy(token, s) {
			others = append(others, k)
		}
	}
	slices.Sort(others)
	switch {
	case len(others) > 0:
		x.e.SignedWith = others[0]
		x.say("The signature does verify with the secret configured for %q: the sender uses that secret but names the key %q.", others[0], iss)
	case !x.e.KeyKnown:
		x.say("The signature verifies with none of the configured secrets.")
	}
}

func signedBy(token, secret string) bool {
	_, err := jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithValidMethods([]string{"HS256"})).
		Parse(token, func(*jwt.Token) (any, error) { return []byte(secret), nil })
	return err == nil
}

func (x *explainer) hash(mc jwt.MapClaims, body []byte) {
	claim, _ := mc["sha256"].(string)
	x.e.HashClaim = claim
	if claim == "" {
		x.problem("The token has no sha256 claim, so it does not vouch for any body; LiveKit always sets one.")
		return
	}
	if claim == x.e.BodyHash {
		x.e.HashMatch = true
		x.say("Its sha256 claim matches the body (%d bytes): the body is exactly what was signed.", len(body))
		return
	}
	cause, confirmed := diagnose(body, claim)
	x.e.Cause, x.e.CauseConfirmed = cause, confirmed
	x.problem("Its sha256 claim %s does not match the body's hash %s (%d bytes): the body is not byte for byte what was signed.",
		claim, x.e.BodyHash, len(body))
	if confirmed {
		x.say("Cause (confirmed: undoing it reproduces the signed hash): %s.", cause)
	} else {
		x.say("Likely cause: %s.", cause)
	}
}

func (x *explainer) verdict() {
	e := x.e
	if e.OK {
		x.say("Verdict: VALID: the receiver accepts this request (key %q).", e.Key)
		return
	}
	if x.problems == 0 {
		// Every check above passed but Verify refused: say why anyway.
		x.problems++
	}
	msg := fmt.Sprintf("Verdict: REFUSED (%s): %v.", e.Reason, e.Err)
	if x.problems > 1 {
		msg += fmt.Sprintf(" The receiver stops at the first failed check; %d problems are listed above.", x.problems)
	}
	x.say("%s", msg)
}

// diagnose guesses what turned the signed body into body. A transformation
// whose inverse reproduces the claimed hash is confirmed.
func diagnose(body []byte, claim string) (string, bool) {
	matches := func(b []byte) bool { return BodyHash(b) == claim }
	type candidate struct {
		undo  func([]byte) []byte
		cause string
	}
	candidates := []candidate{
		{func(b []byte) []byte { return bytes.TrimRight(b, "\r\n") },
			"a trailing newline was added to the body after signing (LiveKit's body has none; an editor, echo, a capture or logging tool adds one)"},
		{func(b []byte) []byte { return append(slices.Clip(b), '\n') },
			"a trailing newline was removed from the body after signing"},
		{func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) },
			"line endings were converted from LF to CRLF (a Windows tool or git's autocrlf)"},
		{func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) },
			"line endings were converted from CRLF to LF"},
		{compactJSON,
			"the body differs only in whitespace: a proxy or framework re-serialized (re-formatted) the JSON"},
		{func(b []byte) []byte { return spaceAfterCommas(compactJSON(b)) },
			"the body differs only in whitespace: a proxy or framework re-serialized (re-formatted) the JSON"},
		{remarshal,
			"a proxy or framework re-serialized the JSON: same event, different key order or formatting"},
		{func(b []byte) []byte { return spaceAfterCommas(remarshal(b)) },
			"a proxy or framework re-serialized the JSON: same event, different key order or formatting"},
	}
	for _, c := range candidates {
		if u := c.undo(body); u != nil && !bytes.Equal(u, body) && matches(u) {
			return c.cause, true
		}
	}

	trimmed := bytes.TrimSpace(body)
	switch {
	case len(body) == 0:
		return "the body is empty: something read it before it was verified (a body-parsing middleware), or it was not captured", false
	case !json.Valid(body):
		return fmt.Sprintf("the body (%d bytes) is not valid JSON: it was truncated, altered or is not this request's body", len(body)), false
	case bytes.Contains(body, []byte("\r\n")):
		return "the body has CRLF line endings while LiveKit sends a single line: it was rewritten (line endings converted, re-formatted) and changed otherwise as well", false
	case bytes.ContainsAny(trimmed, "\n"):
		return "the body is multi-line JSON while LiveKit sends a single line: a proxy or framework re-serialized the JSON", false
	case body[len(body)-1] == '\n' || body[len(body)-1] == ' ':
		return "the body ends with whitespace, which LiveKit's never does: something appended it and the content differs as well", false
	case snakeKeys.Match(body):
		return "the body has snake_case keys (created_at, egress_info, …) while LiveKit sends lowerCamelCase: the JSON was decoded and re-encoded with proto field names", false
	case numericInt64.Match(body):
		return "createdAt/joinedAt are JSON numbers while LiveKit sends int64 values as strings: the JSON was decoded and re-encoded by a generic JSON library", false
	default:
		return fmt.Sprintf("the body (%d bytes) is not the one this token was made for: either the token belongs to another request, or the content was modified on the way (a proxy, a body-parsing middleware, or how it was captured)", len(body)), false
	}
}

var (
	snakeKeys    = regexp.MustCompile(`"(created_at|egress_info|ingress_info|joined_at|creation_time|num_participants|room_end_reason)"\s*:`)
	numericInt64 = regexp.MustCompile(`"(createdAt|joinedAt|creationTime)"\s*:\s*-?[0-9]`)
)

func compactJSON(b []byte) []byte {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return nil
	}
	return out.Bytes()
}

// remarshal decodes body as an event and encodes it the way LiveKit does.
func remarshal(b []byte) []byte {
	ev := &livekit.WebhookEvent{}
	if (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, ev) != nil {
		return nil
	}
	out, err := Marshal(ev)
	if err != nil {
		return nil
	}
	return compactJSON(out)
}

// spaceAfterCommas adds a space after each comma outside strings in compact
// JSON: protojson's single-line output does so in some builds.
func spaceAfterCommas(b []byte) []byte {
	if b == nil {
		return nil
	}
	out := make([]byte, 0, len(b)+len(b)/8)
	inString, escaped := false, false
	for _, c := range b {
		out = append(out, c)
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && c == ',':
			out = append(out, ' ')
		}
	}
	return out
}

// jwtProblem describes a jwt parse error without the token.
func jwtProblem(err error) string {
	msg := err.Error()
	for _, prefix := range []string{"token is malformed: ", "token has invalid claims: "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	if errors.Is(err, jwt.ErrTokenMalformed) && msg == "" {
		return "malformed"
	}
	return msg
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func relative(now, t time.Time) string {
	if d := now.Sub(t); d >= 0 {
		return fmtDur(d) + " ago"
	}
	return "in " + fmtDur(t.Sub(now)) + ", ahead of this clock"
}

// fmtDur prints a duration to the second ("3m12s"), or to the millisecond
// under a second.
func fmtDur(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Truncate(time.Second).String()
}

// fmtLeeway prints a leeway as LiveKit documents it ("60s").
func fmtLeeway(d time.Duration) string {
	if d >= 0 && d%time.Second == 0 && d < time.Hour {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
