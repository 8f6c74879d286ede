package livekitwebhook

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/beluga-ai-contrib/beluga-livekit/internal/engine"
	"github.com/beluga-ai-contrib/beluga-livekit/internal/verify"
)

// Verification refusals (401), each with its reason label. They are the
// values verification returns: use errors.Is on the error given to a
// WithRefusalHandler callback, or read the "reason" field of the answer.
var (
	// ErrMissingToken: no Authorization token, nor a legacy signature
	// where those are accepted (reason missing_token).
	ErrMissingToken = verify.ErrMissingToken
	// ErrMalformedToken: the token is not a JWT (reason malformed_token).
	ErrMalformedToken = verify.ErrMalformedToken
	// ErrUnknownKey: the token's issuer (the API key) is missing or not
	// configured (reason unknown_key).
	ErrUnknownKey = verify.ErrUnknownKey
	// ErrBadSignature: the token is not signed with the key's secret
	// (reason bad_signature).
	ErrBadSignature = verify.ErrBadSignature
	// ErrBadAlgorithm: the token is not HS256 (reason bad_algorithm).
	ErrBadAlgorithm = verify.ErrBadAlgorithm
	// ErrExpired: the token's exp has passed, beyond the allowed clock
	// skew (reason expired).
	ErrExpired = verify.ErrExpired
	// ErrNotYetValid: the token's nbf or iat is in the future, beyond the
	// allowed clock skew (reason not_yet_valid).
	ErrNotYetValid = verify.ErrNotYetValid
	// ErrNoExpiry: the token has no exp claim (reason no_expiry).
	ErrNoExpiry = verify.ErrNoExpiry
	// ErrHashMismatch: the body's SHA-256 is not the token's sha256 claim
	// (reason hash_mismatch).
	ErrHashMismatch = verify.ErrHashMismatch
	// ErrMissingHash: the token has no sha256 claim (reason missing_hash).
	ErrMissingHash = verify.ErrMissingHash
	// ErrBadLegacySig: the X-LiveKit-Signature header does not match the
	// body (reason bad_legacy_signature).
	ErrBadLegacySig = verify.ErrBadLegacySig
)

// Other refusals.
var (
	ErrMethodNotAllowed  = errors.New("livekit webhook: method not allowed")          // 405
	ErrBodyTooLarge      = errors.New("livekit webhook: body too large")              // 413
	ErrUnsupportedMedia  = errors.New("livekit webhook: unsupported content type")    // 415
	ErrMalformedEvent    = errors.New("livekit webhook: malformed event")             // 400
	ErrIDTooLong         = errors.New("livekit webhook: id too long")                 // 400
	ErrEngineUnavailable = errors.New("livekit webhook: event store unavailable")     // 503
	ErrShuttingDown      = errors.New("livekit webhook: shutting down")               // 503
	ErrBodyRead          = errors.New("livekit webhook: could not read request body") // 400
)

// ErrSecretTooShort: New refuses an API secret shorter than 32 bytes (as
// livekit-server does) outside Config.Dev.
var ErrSecretTooShort = errors.New("livekitwebhook: API secret too short")

// RefusalError is a refused webhook request: the HTTP status, a stable
// reason label (also the metric label and log field) and the cause.
type RefusalError struct {
	Status int
	Reason string
	Err    error
}

// Error returns the cause's message (never a secret).
func (e *RefusalError) Error() string { return e.Err.Error() }

// Unwrap returns the cause, for errors.Is with the Err* values.
func (e *RefusalError) Unwrap() error { return e.Err }

// refusal classifies err into a RefusalError.
func refusal(err error) *RefusalError {
	var re *RefusalError
	if errors.As(err, &re) {
		return re
	}
	switch {
	case errors.Is(err, ErrMethodNotAllowed):
		return &RefusalError{http.StatusMethodNotAllowed, "method_not_allowed", err}
	case errors.Is(err, ErrBodyTooLarge):
		return &RefusalError{http.StatusRequestEntityTooLarge, "body_too_large", err}
	case errors.Is(err, ErrUnsupportedMedia):
		return &RefusalError{http.StatusUnsupportedMediaType, "unsupported_media_type", err}
	case errors.Is(err, ErrMalformedEvent):
		return &RefusalError{http.StatusBadRequest, "malformed_event", err}
	case errors.Is(err, ErrIDTooLong):
		return &RefusalError{http.StatusBadRequest, "id_too_long", err}
	case errors.Is(err, ErrBodyRead):
		return &RefusalError{http.StatusBadRequest, "body_read", err}
	case errors.Is(err, ErrShuttingDown):
		return &RefusalError{http.StatusServiceUnavailable, "shutting_down", err}
	case errors.Is(err, ErrEngineUnavailable), errors.Is(err, engine.ErrUnavailable):
		return &RefusalError{http.StatusServiceUnavailable, "engine_unavailable", err}
	default:
		return &RefusalError{http.StatusUnauthorized, verify.Reason(err), err}
	}
}

// ErrRoomFinished is the cause of the error the Plugin's BeforeTurn
// returns for a session whose room has finished (and of Transport.Send
// after room_finished). Test with errors.Is(err, ErrRoomFinished); the error
// itself is a *core.Error with code core.ErrInvalidInput.
//
// It is deliberately a plain error, not a *core.Error: core.Error.Is matches
// any two core.Errors with the same code, so a *core.Error sentinel would
// also "match" unrelated invalid-input errors (the Runner wraps every
// BeforeTurn failure in one).
var ErrRoomFinished = errors.New("livekit room finished")

// RoomFinishedError is how a transport bound to a room (TransportName)
// tells voice.VoicePipeline.Run that the room's room_finished was
// processed: Run returns it (errors.As), and errors.Is(err, ErrRoomFinished)
// holds. A context cancel never gives one.
type RoomFinishedError struct {
	// Room is the LiveKit room name the transport is bound to.
	Room string
	// RoomSID and SessionID are those of the finished room, when the
	// receiver's state could be read ("" otherwise).
	RoomSID   string
	SessionID string
	// Reason is LiveKit's RoomEndReason name, "" when the server sent none
	// (servers before v1.9) or the state could not be read.
	Reason string
}

// Error names the room and its end reason.
func (e *RoomFinishedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("livekit room %q finished", e.Room)
	}
	return fmt.Sprintf("livekit room %q finished: %s", e.Room, e.Reason)
}

// Unwrap returns ErrRoomFinished.
func (e *RoomFinishedError) Unwrap() error { return ErrRoomFinished }
