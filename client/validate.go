package client

import (
	"context"
	"fmt"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
)

// validateInterceptor checks every outgoing unary request message with
// protovalidate before it is sent: the same rules, read from the same
// generated descriptors (and, for names, the same remit.names.v1 rules), that
// the gateway's validation interceptor applies. A request the gateway would
// certainly reject fails locally instead, as an invalid_argument error that
// wraps [ErrInvalidRequest] and the [*protovalidate.ValidationError], and is
// never retried.
type validateInterceptor struct{}

// checkRequest returns nil for a valid message, or the invalid_argument
// error the gateway would have answered with.
func checkRequest(msg any) error {
	m, ok := msg.(proto.Message)
	if !ok {
		return nil
	}
	if err := protovalidate.Validate(m); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%w: %w", ErrInvalidRequest, err))
	}
	return nil
}

func (validateInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := checkRequest(req.Any()); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient does not check streams: connect makes the HTTP
// request even when the first Send fails, so a local check would not keep
// the request off the wire. The one stream the client opens, Watch, sends
// only a cursor it keeps itself.
func (validateInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (validateInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
