// grpc-java's client (Netty transport; classes from protoc and grpc_java_plugin run on rpcboot's
// emitted rich .proto, on Debian's libgrpc-java and libprotobuf-java) calls an rpcboot server:
// values, unsigned and optional fields, status codes, a deadline, many calls in flight on one
// connection and large messages; with a certificate directory, over mutual TLS.
//   java StockGrpcClient GRPC_PORT [CERT_DIR]
// Prints "OK: <n> checks" and exits 0, or prints "FAIL: <what>" and exits 1.
import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.io.File;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import rich.Color;
import rich.HistogramRequest;
import rich.HistogramResponse;
import rich.Level;
import rich.Light;
import rich.LookupRequest;
import rich.LookupResponse;
import rich.MixRequest;
import rich.NearestRequest;
import rich.NotifyRequest;
import rich.PathRequest;
import rich.Point;
import rich.RichServiceGrpc;
import rich.Scalars;
import rich.Tier;

public class StockGrpcClient {
  static Status.Code codeOf(Runnable call) {
    try {
      call.run();
      return Status.Code.OK;
    } catch (StatusRuntimeException e) {
      return e.getStatus().getCode();
    }
  }

  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(args[0]);
    NettyChannelBuilder builder =
        NettyChannelBuilder.forAddress("127.0.0.1", port).maxInboundMessageSize(16 << 20);
    if (args.length > 1) {
      File certs = new File(args[1]);
      builder.overrideAuthority("localhost").sslContext(
          GrpcSslContexts.forClient()
              .trustManager(new File(certs, "ca.crt"))
              .keyManager(new File(certs, "client.crt"), new File(certs, "client.key"))
              .build());
    } else {
      builder.usePlaintext();
    }
    ManagedChannel channel = builder.build();
    RichServiceGrpc.RichServiceBlockingStub stub =
        RichServiceGrpc.newBlockingStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);

    Checks.check(stub.mix(MixRequest.newBuilder().setA(Color.COLOR_RED).setB(Color.COLOR_GREEN).build())
                  .getValue()
              == Color.COLOR_BLUE,
        "Mix");
    List<Point> path = stub.path(PathRequest.newBuilder()
                                     .addPoints(Point.newBuilder().setX(1).setY(2))
                                     .addPoints(Point.newBuilder().setX(3).setY(4))
                                     .setReversed(true)
                                     .build())
                           .getValueList();
    Checks.check(path.size() == 2 && path.get(0).getX() == 3 && path.get(1).getY() == 2, "Path");
    HistogramResponse histogram =
        stub.histogram(HistogramRequest.newBuilder().addWords("a").addWords("b").addWords("a").build());
    Checks.check(histogram.getValueOrThrow("a") == 2 && histogram.getValueOrThrow("b") == 1, "Histogram");
    // Custom metadata, text and binary (grpc-java sends "-bin" values base64), reaches the handler.
    Metadata headers = new Metadata();
    headers.put(Metadata.Key.of("x-tenant", Metadata.ASCII_STRING_MARSHALLER), "acme");
    headers.put(Metadata.Key.of("x-blob-bin", Metadata.BINARY_BYTE_MARSHALLER),
        new byte[] {0, (byte) 0xff, 10});
    HistogramResponse seen = stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
                                 .histogram(HistogramRequest.newBuilder().addWords("a").build());
    Checks.check(seen.getValueCount() == 3 && seen.getValueOrDefault("metadata:x-tenant=acme", 0) == 1
            && seen.getValueOrDefault("metadata:x-blob-bin=00ff0a", 0) == 1,
        "metadata " + seen.getValueMap());
    Scalars scalars = Scalars.newBuilder()
                          .setFlag(true)
                          .setI8(-5)
                          .setI16(-300)
                          .setI32(70000)
                          .setI64(-(1L << 40))
                          .setU8(255)
                          .setU16(65535)
                          .setU32(-1)  // 2^32 - 1 in Java's int
                          .setU64(-1L)  // 2^64 - 1 in Java's long
                          .setF32(1.5f)
                          .setF64(-2.25)
                          .setText("héllo 🍕")
                          .setBlob(ByteString.copyFrom(new byte[] {0, 1, (byte) 255}))
                          .setColor(Color.COLOR_BLUE)
                          .setLight(Light.LIGHT_OFF)
                          .setLevel(Level.LEVEL_HIGH)
                          .setTier(Tier.TIER_GOLD)
                          .build();
    Scalars back = stub.echoScalars(scalars);
    Checks.check(back.equals(scalars), "EchoScalars: " + back + " != " + scalars);
    Checks.check(Long.toUnsignedString(back.getU64()).equals("18446744073709551615"), "u64 max");
    LookupResponse zero = stub.lookup(LookupRequest.newBuilder().setKey(0).build());
    Checks.check(zero.hasValue() && zero.getValue().equals("key 0"), "Lookup(0) (a present zero)");
    Checks.check(!stub.lookup(LookupRequest.getDefaultInstance()).hasValue(), "Lookup() without a key");
    Checks.check(stub.nearest(NearestRequest.newBuilder().setOrigin(Point.newBuilder()).build())
                  .getValue()
                  .getX()
              == 1,
        "Nearest");
    Checks.check(!stub.nearest(NearestRequest.getDefaultInstance()).hasValue(), "Nearest()");

    try {
      stub.notify(NotifyRequest.newBuilder().setId(-4).setMessage("x").build());
      Checks.check(false, "Notify(-4) must fail");
    } catch (StatusRuntimeException e) {
      Checks.check(e.getStatus().getCode() == Status.Code.FAILED_PRECONDITION
              && "negative id -4".equals(e.getStatus().getDescription()),
          "Notify(-4): " + e.getStatus());
    }
    Checks.check(codeOf(() -> stub.notify(NotifyRequest.newBuilder().setId(0).setMessage("java").build()))
            == Status.Code.INTERNAL,
        "Notify(0) is INTERNAL");
    Checks.check(codeOf(()
                     -> stub.withDeadlineAfter(100, TimeUnit.MILLISECONDS)
                            .notify(NotifyRequest.newBuilder().setId(1500).build()))
            == Status.Code.DEADLINE_EXCEEDED,
        "a deadline expires");
    try {
      stub.echoScalars(Scalars.newBuilder().setU8(300).build());
      Checks.check(false, "u8=300 must be refused");
    } catch (StatusRuntimeException e) {
      Checks.check(e.getStatus().getCode() == Status.Code.INVALID_ARGUMENT
              && e.getStatus().getDescription().contains("out of range"),
          "u8=300: " + e.getStatus());
    }

    // 2,000 calls in flight together on the one HTTP/2 connection.
    RichServiceGrpc.RichServiceStub async =
        RichServiceGrpc.newStub(channel).withDeadlineAfter(30, TimeUnit.SECONDS);
    CountDownLatch done = new CountDownLatch(2000);
    AtomicInteger wrong = new AtomicInteger();
    AtomicReference<String> firstWrong = new AtomicReference<>();
    for (int i = 0; i < 2000; i++) {
      final long key = i;
      async.lookup(LookupRequest.newBuilder().setKey(key).build(), new StreamObserver<LookupResponse>() {
        public void onNext(LookupResponse r) {
          if (!r.getValue().equals("key " + key)) {
            wrong.incrementAndGet();
            firstWrong.compareAndSet(null, key + ": " + r.getValue());
          }
        }
        public void onError(Throwable t) {
          wrong.incrementAndGet();
          firstWrong.compareAndSet(null, key + ": " + t);
          done.countDown();
        }
        public void onCompleted() {
          done.countDown();
        }
      });
    }
    Checks.check(done.await(60, TimeUnit.SECONDS), "2000 concurrent calls finish");
    Checks.check(wrong.get() == 0, "2000 concurrent calls: " + wrong.get() + " wrong, " + firstWrong.get());
    // 4 MiB out and back, ten at a time.
    String big = "x".repeat(4 << 20);
    CountDownLatch bigDone = new CountDownLatch(10);
    AtomicReference<String> bigError = new AtomicReference<>();
    for (int i = 0; i < 10; i++) {
      async.histogram(HistogramRequest.newBuilder().addWords(big).addWords(big).addWords("a").build(),
          new StreamObserver<HistogramResponse>() {
            public void onNext(HistogramResponse r) {
              if (r.getValueOrDefault(big, 0) != 2 || r.getValueOrDefault("a", 0) != 1) {
                bigError.compareAndSet(null, "wrong counts");
              }
            }
            public void onError(Throwable t) {
              bigError.compareAndSet(null, t.toString());
              bigDone.countDown();
            }
            public void onCompleted() {
              bigDone.countDown();
            }
          });
    }
    Checks.check(bigDone.await(60, TimeUnit.SECONDS), "4 MiB calls finish");
    Checks.check(bigError.get() == null, "4 MiB messages: " + bigError.get());

    channel.shutdown().awaitTermination(5, TimeUnit.SECONDS);
    System.out.println("OK: " + Checks.passed + " checks (grpc-java over Netty"
        + (args.length > 1 ? ", mutual TLS" : "") + ")");
    System.exit(0);
  }
}
