package serve_test

import (
	"errors"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// protojsonUnmarshal decodes like Connect's JSON codec: unknown fields are
// discarded (for forward compatibility) and an empty body is not a JSON
// object in a unary request (a streaming message of zero length is the
// empty message).
func protojsonUnmarshal(b []byte, m proto.Message, stream bool) error {
	if len(b) == 0 && stream {
		return nil
	}
	if len(b) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
}
