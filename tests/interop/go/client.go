// Stock Go clients call an rpcboot server: grpc-go with code protoc-gen-go and protoc-gen-go-grpc
// generated from the emitted .proto files, and Apache Thrift's Go library with code
// thrift-compiler generated (--gen go) from the emitted .thrift files, framed and THeader
// (Debian's packages of each). Values, optional fields, errors, deadlines, many calls in flight on one connection and
// large messages; with a certificate directory, the same over mutual TLS.
//
//	client GRPC_PORT THRIFT_PORT [CERT_DIR]
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "pb/rich"
	tr "tg/rich"
)

var checks int

func check(ok bool, format string, args ...interface{}) {
	if !ok {
		fmt.Printf("FAIL: "+format+"\n", args...)
		os.Exit(1)
	}
	checks++
}

func tlsConfig(certDir string) *tls.Config {
	if certDir == "" {
		return nil
	}
	ca, err := os.ReadFile(filepath.Join(certDir, "ca.crt"))
	check(err == nil, "read ca.crt: %v", err)
	pool := x509.NewCertPool()
	check(pool.AppendCertsFromPEM(ca), "ca.crt holds no certificate")
	pair, err := tls.LoadX509KeyPair(filepath.Join(certDir, "client.crt"), filepath.Join(certDir, "client.key"))
	check(err == nil, "client certificate: %v", err)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: "localhost"}
}

func grpcChecks(port string, tc *tls.Config) {
	opts := []grpc.DialOption{grpc.WithBlock(), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16 << 20))}
	if tc != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	} else {
		opts = append(opts, grpc.WithInsecure())
	}
	dial, cancelDial := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelDial()
	conn, err := grpc.DialContext(dial, "127.0.0.1:"+port, opts...)
	check(err == nil, "grpc dial: %v", err)
	defer conn.Close()
	c := pb.NewRichServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	mix, err := c.Mix(ctx, &pb.MixRequest{A: pb.Color_COLOR_RED, B: pb.Color_COLOR_GREEN})
	check(err == nil && mix.GetValue() == pb.Color_COLOR_BLUE, "grpc: Mix %v %v", mix, err)
	path, err := c.Path(ctx, &pb.PathRequest{Points: []*pb.Point{{X: 1, Y: 2}, {X: 3, Y: 4}}, Reversed: true})
	check(err == nil && len(path.GetValue()) == 2 && path.GetValue()[0].GetX() == 3, "grpc: Path %v %v", path, err)
	h, err := c.Histogram(ctx, &pb.HistogramRequest{Words: []string{"a", "b", "a"}})
	check(err == nil && h.GetValue()["a"] == 2 && h.GetValue()["b"] == 1, "grpc: Histogram %v %v", h, err)
	// Custom metadata, text and binary (grpc-go sends "-bin" values base64), reaches the handler.
	mdCtx := metadata.AppendToOutgoingContext(ctx, "x-tenant", "acme", "x-blob-bin", "\x00\xff\n")
	h, err = c.Histogram(mdCtx, &pb.HistogramRequest{Words: []string{"a"}})
	check(err == nil && len(h.GetValue()) == 3 && h.GetValue()["metadata:x-tenant=acme"] == 1 &&
		h.GetValue()["metadata:x-blob-bin=00ff0a"] == 1, "grpc: metadata %v %v", h, err)
	// What the handler adds to its reply's metadata arrives as trailing metadata.
	var trailer metadata.MD
	_, err = c.Histogram(ctx, &pb.HistogramRequest{Words: []string{"reply:x-served-by=go"}}, grpc.Trailer(&trailer))
	check(err == nil && len(trailer.Get("x-served-by")) == 1 && trailer.Get("x-served-by")[0] == "go",
		"grpc: reply metadata %v %v", trailer, err)
	s := &pb.Scalars{Flag: true, I8: -5, I16: -300, I32: 70000, I64: -(1 << 40), U8: 255, U16: 65535,
		U32: 1<<32 - 1, U64: 1<<64 - 1, F32: 1.5, F64: -2.25, Text: "héllo 🍕", Blob: []byte{0, 1, 255},
		Color: pb.Color_COLOR_BLUE, Light: pb.Light_LIGHT_OFF, Level: pb.Level_LEVEL_HIGH.Enum(), Tier: pb.Tier_TIER_GOLD}
	back, err := c.EchoScalars(ctx, s)
	check(err == nil && back.GetU64() == s.U64 && back.GetI64() == s.I64 && back.GetText() == s.Text &&
		bytes.Equal(back.GetBlob(), s.Blob) && back.GetTier() == s.Tier && back.GetLight() == s.Light &&
		back.GetF32() == s.F32 && back.GetI8() == s.I8, "grpc: EchoScalars %v %v", back, err)
	zero := int64(0)
	l, err := c.Lookup(ctx, &pb.LookupRequest{Key: &zero})
	check(err == nil && l.Value != nil && l.GetValue() == "key 0", "grpc: Lookup(0) %v %v", l, err)
	l, err = c.Lookup(ctx, &pb.LookupRequest{})
	check(err == nil && l.Value == nil, "grpc: Lookup() %v %v", l, err)
	n, err := c.Nearest(ctx, &pb.NearestRequest{Origin: &pb.Point{X: 0, Y: 0}})
	check(err == nil && n.GetValue().GetX() == 1, "grpc: Nearest %v %v", n, err)
	n, err = c.Nearest(ctx, &pb.NearestRequest{})
	check(err == nil && n.Value == nil, "grpc: Nearest() %v %v", n, err)
	o, err := c.PlaceOrder(ctx, &pb.Order{Lines: []*pb.Line{{Sku: 1, Quantity: 2}, {Sku: 3, Quantity: 5}}})
	check(err == nil && o.GetValue() == 7, "grpc: PlaceOrder %v %v", o, err)

	_, err = c.Notify(ctx, &pb.NotifyRequest{Id: -4, Message: "x"})
	check(status.Code(err) == codes.FailedPrecondition && status.Convert(err).Message() == "negative id -4",
		"grpc: Notify(-4): %v", err)
	_, err = c.Notify(ctx, &pb.NotifyRequest{Id: 0, Message: "go"})
	check(status.Code(err) == codes.Internal, "grpc: Notify(0): %v", err)
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = c.Notify(short, &pb.NotifyRequest{Id: 1500, Message: "slow"})
	cancelShort()
	check(status.Code(err) == codes.DeadlineExceeded, "grpc: deadline: %v", err)
	_, err = c.EchoScalars(ctx, &pb.Scalars{U8: 300})
	check(status.Code(err) == codes.InvalidArgument && strings.Contains(err.Error(), "out of range"),
		"grpc: u8=300: %v", err)

	// 2,000 calls in flight together on the one HTTP/2 connection.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wrong []string
	for i := 0; i < 2000; i++ {
		wg.Add(1)
		go func(key int64) {
			defer wg.Done()
			r, err := c.Lookup(ctx, &pb.LookupRequest{Key: &key})
			if err != nil || r.GetValue() != fmt.Sprintf("key %d", key) {
				mu.Lock()
				wrong = append(wrong, fmt.Sprintf("%d: %v %v", key, r, err))
				mu.Unlock()
			}
		}(int64(i))
	}
	wg.Wait()
	check(len(wrong) == 0, "grpc: 2000 concurrent calls, %d failed or wrong: %v", len(wrong), wrong)
	// 4 MiB out and back, ten at a time.
	big := strings.Repeat("x", 4<<20)
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		go func() {
			r, err := c.Histogram(ctx, &pb.HistogramRequest{Words: []string{big, big, "a"}})
			if err == nil && (r.GetValue()[big] != 2 || r.GetValue()["a"] != 1) {
				err = errors.New("wrong counts")
			}
			errs <- err
		}()
	}
	for i := 0; i < 10; i++ {
		err := <-errs
		check(err == nil, "grpc: 4 MiB messages: %v", err)
	}
}

// framed: a framed transport under the protocol; otherwise THeader, its frames carrying the
// protocol the configuration names.
func thriftChecks(name string, port string, tc *tls.Config, framed thrift.TProtocolFactory,
	header thrift.THeaderProtocolID) {
	conf := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 10 * time.Second,
		TLSConfig: tc, THeaderProtocolID: &header}
	var socket thrift.TTransport
	if tc != nil {
		socket = thrift.NewTSSLSocketConf("127.0.0.1:"+port, conf)
	} else {
		socket = thrift.NewTSocketConf("127.0.0.1:"+port, conf)
	}
	check(socket.Open() == nil, "thrift %s: connect", name)
	defer socket.Close()
	var protocol thrift.TProtocol
	if framed != nil {
		protocol = framed.GetProtocol(thrift.NewTFramedTransportConf(socket, conf))
	} else {
		protocol = thrift.NewTHeaderProtocolConf(socket, conf)
	}
	rich := thrift.NewTMultiplexedProtocol(protocol, "rich.RichService")
	admin := thrift.NewTMultiplexedProtocol(protocol, "rich.AdminService")
	c := tr.NewRichServiceClient(thrift.NewTStandardClient(rich, rich))
	a := tr.NewAdminServiceClient(thrift.NewTStandardClient(admin, admin))
	ctx := context.Background()

	mix, err := c.Mix(ctx, tr.Color_kRed, tr.Color_kGreen)
	check(err == nil && mix == tr.Color_kBlue, "thrift %s: Mix %v %v", name, mix, err)
	p, err := c.Path(ctx, []*tr.Point{{X: 1, Y: 2}, {X: 3, Y: 4}}, true)
	check(err == nil && len(p) == 2 && p[0].X == 3 && p[1].Y == 2, "thrift %s: Path %v %v", name, p, err)
	h, err := c.Histogram(ctx, []string{"a", "b", "a"})
	check(err == nil && h["a"] == 2 && h["b"] == 1, "thrift %s: Histogram %v %v", name, h, err)
	if framed == nil {
		// THeader headers the caller sets reach the handler as its metadata (Go's client sends
		// them only when its protocol is THeader's own, not wrapped in TMultiplexedProtocol).
		hctx := thrift.SetHeader(ctx, "x-tenant", "acme")
		hctx = thrift.SetWriteHeaderList(hctx, []string{"x-tenant"})
		plain := tr.NewRichServiceClient(thrift.NewTStandardClient(protocol, protocol))
		h, err = plain.Histogram(hctx, []string{"a"})
		check(err == nil && len(h) == 2 && h["metadata:x-tenant=acme"] == 1, "thrift %s: metadata %v %v", name, h, err)
	}
	t, err := c.Transpose(ctx, [][]int32{{1, 2}, {3, 4}})
	check(err == nil && fmt.Sprint(t) == "[[1 3] [2 4]]", "thrift %s: Transpose %v %v", name, t, err)
	stamp, err := c.Now(ctx)
	check(err == nil && stamp.Seconds == 1795422103 && stamp.Zone == "UTC", "thrift %s: Now %v %v", name, stamp, err)
	l, err := c.Lookup(ctx, 8)
	check(err == nil && l.Value != nil && *l.Value == "key 8", "thrift %s: Lookup(8) %v %v", name, l, err)
	l, err = c.Lookup(ctx, -1)
	check(err == nil && l.Value == nil, "thrift %s: Lookup(-1) %v %v", name, l, err)
	for _, want := range []struct {
		id      int64
		code    int32
		message string
	}{{-4, 9, "negative id -4"}, {0, 13, "boom: go"}} {
		err = c.Notify(ctx, want.id, "go", tr.Color_kRed)
		var rpcErr *tr.RpcError
		check(errors.As(err, &rpcErr) && rpcErr.Code == want.code && rpcErr.Message == want.message,
			"thrift %s: Notify(%d) must fail with RpcError %d: %v", name, want.id, want.code, err)
	}
	v, err := a.Version(ctx)
	check(err == nil && v == "1.2.3", "thrift %s: multiplexed AdminService %v %v", name, v, err)
	for i := int64(0); i < 500; i++ {
		l, err = c.Lookup(ctx, i)
		if err != nil || l.Value == nil || *l.Value != fmt.Sprintf("key %d", i) {
			check(false, "thrift %s: call %d: %v %v", name, i, l, err)
		}
	}
	checks++
}

func main() {
	if len(os.Args) < 3 {
		fmt.Println("usage: client GRPC_PORT THRIFT_PORT [CERT_DIR]")
		os.Exit(2)
	}
	certDir := ""
	if len(os.Args) > 3 {
		certDir = os.Args[3]
	}
	tc := tlsConfig(certDir)
	grpcChecks(os.Args[1], tc)
	thriftChecks("compact", os.Args[2], tc, thrift.NewTCompactProtocolFactoryConf(nil), 0)
	thriftChecks("binary", os.Args[2], tc, thrift.NewTBinaryProtocolFactoryConf(nil), 0)
	thriftChecks("THeader compact", os.Args[2], tc, nil, thrift.THeaderProtocolCompact)
	thriftChecks("THeader binary", os.Args[2], tc, nil, thrift.THeaderProtocolBinary)
	over := ""
	if certDir != "" {
		over = ", over mutual TLS"
	}
	fmt.Printf("go interop: %d checks passed (grpc-go; thrift compact, binary, THeader compact and binary%s)\n", checks, over)
}
