package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestTransient: no answer, nobody to answer, and a clustered stream still
// committing the same message id are retried; every other refusal is final
// (the distributor dead-letters an event only on a final one).
func TestTransient(t *testing.T) {
	apiErr := func(code jetstream.ErrorCode) error {
		return fmt.Errorf("publish: %w", &jetstream.APIError{Code: 409, ErrorCode: code, Description: "x"})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no error", nil, false},
		{"deadline", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), true},
		{"timeout", nats.ErrTimeout, true},
		{"no responders", nats.ErrNoResponders, true},
		{"no stream response", jetstream.ErrNoStreamResponse, true},
		{"message id in process (clustered stream)", apiErr(errCodeMsgIDInProcess), true},
		{"wrong last sequence", apiErr(jetstream.JSErrCodeStreamWrongLastSequence), false},
		{"message not found", apiErr(jetstream.JSErrCodeMessageNotFound), false},
		{"canceled", context.Canceled, false},
		{"anything else", errors.New("boom"), false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
