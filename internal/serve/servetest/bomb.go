// Package servetest attacks Remit servers the way the outside review did,
// for the tests of every package that runs one (internal/serve, the
// gateway, the banks).
package servetest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
)

// Bomb returns gzip that inflates to inflated bytes (a whole number of
// MiB, at least 1): a valid grpc.health.v1.HealthCheckRequest, and
// grpc.reflection ServerReflectionRequest (field 1 is a string in both),
// whose string is all 'A'. It is 1 MiB members compressed once and
// repeated, about 1 KB per MiB: gzip readers read concatenated members as
// one stream.
func Bomb(inflated int) []byte {
	const chunk = 1 << 20
	if inflated < chunk || inflated%chunk != 0 {
		panic("servetest: Bomb wants a whole number of MiB")
	}
	// The tag and a 4-byte length come first.
	nameLen := uint64(inflated - 5)
	prefix := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), nameLen)
	if len(prefix) != 5 {
		panic("servetest: bomb prefix miscounted")
	}
	first := member(slices.Concat(prefix, bytes.Repeat([]byte("A"), chunk-len(prefix))))
	rest := member(bytes.Repeat([]byte("A"), chunk))
	return slices.Concat(first, bytes.Repeat(rest, inflated/chunk-1))
}

func member(data []byte) []byte {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		panic(err)
	}
	if _, err := zw.Write(data); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Answer is how a server answered a raw RPC.
type Answer struct {
	Code    connect.Code
	Message string
	// BodyBytes is the size of the response body (at most 1 MiB is read).
	BodyBytes int
}

// PostGzip sends body, gzip-compressed already, as one request message to
// procedure ("/pkg.Service/Method") at baseURL, with protocol
// connect.ProtocolGRPC (an enveloped, compressed message) or
// connect.ProtocolConnect (a unary body with Content-Encoding: gzip), and
// reads the error the server answers. A success is Code 0.
func PostGzip(ctx context.Context, client *http.Client, baseURL, procedure, protocol string, body []byte) (Answer, error) {
	header := http.Header{}
	switch protocol {
	case connect.ProtocolGRPC:
		frame := make([]byte, 5, 5+len(body))
		frame[0] = 1                                             // compressed
		binary.BigEndian.PutUint32(frame[1:], uint32(len(body))) //nolint:gosec // G115: test payloads are small
		body = append(frame, body...)
		header.Set("Content-Type", "application/grpc")
		header.Set("Grpc-Encoding", "gzip")
		header.Set("TE", "trailers")
	case connect.ProtocolConnect:
		header.Set("Content-Type", "application/proto")
		header.Set("Content-Encoding", "gzip")
		header.Set("Connect-Protocol-Version", "1")
	default:
		return Answer{}, fmt.Errorf("servetest: protocol %q", protocol)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+procedure, bytes.NewReader(body))
	if err != nil {
		return Answer{}, err
	}
	req.Header = header
	res, err := client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer res.Body.Close() //nolint:errcheck // read below; nothing to report
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return Answer{}, err
	}
	a := Answer{BodyBytes: len(data)}
	if protocol == connect.ProtocolGRPC {
		status, msg := res.Trailer.Get("Grpc-Status"), res.Trailer.Get("Grpc-Message")
		if status == "" { // a trailers-only response
			status, msg = res.Header.Get("Grpc-Status"), res.Header.Get("Grpc-Message")
		}
		n, err := strconv.ParseUint(status, 10, 32)
		if err != nil {
			return a, fmt.Errorf("servetest: grpc-status %q", status)
		}
		if m, err := url.PathUnescape(msg); err == nil {
			msg = m
		}
		a.Code, a.Message = connect.Code(n), msg
		return a, nil
	}
	if res.StatusCode == http.StatusOK {
		return a, nil
	}
	var wire struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(data, &wire); err != nil {
		return a, fmt.Errorf("servetest: Connect error body %.100q: %w", data, err)
	}
	if err := a.Code.UnmarshalText([]byte(wire.Code)); err != nil {
		return a, err
	}
	a.Message = wire.Message
	return a, nil
}
