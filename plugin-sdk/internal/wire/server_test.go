package wire

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type tempErr struct{ temp bool }

func (e tempErr) Error() string   { return fmt.Sprintf("temporary=%v", e.temp) }
func (e tempErr) Transient() bool { return e.temp }

func TestToStatus(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want codes.Code
	}{
		{ctx, nil, codes.OK},
		{ctx, errors.New("bad config"), codes.Unknown},
		{ctx, fmt.Errorf("page 2: %w", tempErr{true}), codes.Aborted},
		{ctx, tempErr{false}, codes.Unknown},
		{ctx, &PanicError{Value: "boom"}, codes.Internal},
		{ctx, fmt.Errorf("x: %w", ErrUnimplemented), codes.Unimplemented},
		{ctx, &InvalidArgumentError{Err: errors.New("unknown sync")}, codes.InvalidArgument},
		// The host cancelled the call.
		{cancelled, fmt.Errorf("%w", context.Canceled), codes.Canceled},
	} {
		got := status.Code(toStatus(tc.ctx, tc.err))
		if got != tc.want {
			t.Errorf("toStatus(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
