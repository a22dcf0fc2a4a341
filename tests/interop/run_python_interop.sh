#!/usr/bin/env bash
# Generates Python stubs from rpcboot's emitted IDL with the stock compilers, starts the rpcboot
# rich server, runs the Python clients against it, and stops the server by its pid.
#   run_python_interop.sh IDL_DIR WORK_DIR SERVER_BIN PROTOC [tls|reflection|java|java-grpc|node|node-tls|go|go-tls]
# With "tls": certificates made by scripts/make-test-certs.sh, a server with mutual TLS on both
# ports, and python_tls_clients.py (grpcio secure channels, thrift's TSSLSocket). With
# "reflection": reflection_client.py learns the services through gRPC server reflection alone,
# from a server that lets only callers with a token call or read its schema. With "java":
# thrift-compiler's Java client (tests/interop/java/StockThriftClient.java) on libthrift-java.
# With "java-grpc": grpc-java's Netty client (tests/interop/java/StockGrpcClient.java) on
# Debian's libgrpc-java.
# With "node" or "node-tls": Node.js clients, grpc-js and Apache Thrift's npm package
# (tests/interop/node/clients.js, modules installed by scripts/setup.sh), in plaintext or over
# mutual TLS. With "go" or "go-tls": Go clients, grpc-go and Apache Thrift's Go library
# (tests/interop/go/client.go, Debian's packages, built in GOPATH mode).
set -euo pipefail
idl_dir=$1 work=$2 server_bin=$3 protoc=$4 mode=${5:-plain}
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3
for tool in thrift "$protoc" /usr/bin/grpc_python_plugin "$python"; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing: run ./scripts/setup.sh"; exit 1; }
done
rm -rf "$work" && mkdir -p "$work/thrift" "$work/proto"
for f in "$idl_dir"/*.thrift; do thrift --gen py -out "$work/thrift" "$f" 2>/dev/null; done
"$protoc" -I"$idl_dir" --python_out="$work/proto" --grpc_out="$work/proto" \
  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin "$idl_dir"/*.proto

server_args=()
if [ "$mode" = tls ] || [ "$mode" = node-tls ] || [ "$mode" = go-tls ]; then
  "$here/../../scripts/make-test-certs.sh" "$work/certs" >/dev/null
  server_args=("tls_dir=$work/certs")
elif [ "$mode" = reflection ]; then
  # Only known callers may call, or read the schema.
  echo "ops reflection-test-token" > "$work/tokens"
  server_args=("tokens_file=$work/tokens" "require_identity=true")
fi
"$server_bin" "${server_args[@]}" > "$work/server.out" 2> "$work/server.err" &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null || true; wait $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q '^ports' "$work/server.out" 2>/dev/null && break
  kill -0 $server_pid 2>/dev/null || { cat "$work/server.err"; echo "FAIL: server exited"; exit 1; }
  sleep 0.05
done
read -r _ grpc thrift < "$work/server.out"
# RPCBOOT_TEST_GRPC_SERVER=native: the peers below must reach rpcboot's native gRPC server.
if [ "${RPCBOOT_TEST_GRPC_SERVER:-}" = native ] && ! grep -q 'native HTTP/2' "$work/server.err"; then
  cat "$work/server.err"; echo "FAIL: the server is not on the native gRPC server"; exit 1
fi
if [ "$mode" = tls ]; then
  "$python" "$here/python_tls_clients.py" "$work" "${grpc#grpc=}" "${thrift#thrift=}" "$work/certs"
  # The rpcboot tool over mutual TLS: with the CA and a client certificate it reads health;
  # without TLS it cannot; half a client certificate is bad usage (exit 2).
  if [ -n "${RPCBOOT_CLI:-}" ]; then
    c=$work/certs target=127.0.0.1:${grpc#grpc=}
    "$RPCBOOT_CLI" --tls_ca="$c/ca.crt" --tls_cert="$c/client.crt" --tls_key="$c/client.key" \
      health "$target" rich.RichService > "$work/cli.out" 2>&1 || { cat "$work/cli.out"; echo "FAIL: rpcboot health over TLS"; exit 1; }
    grep -q SERVING "$work/cli.out" || { cat "$work/cli.out"; echo "FAIL: not SERVING over TLS"; exit 1; }
    if "$RPCBOOT_CLI" --timeout_ms=1000 health "$target" > "$work/cli.out" 2>&1; then
      echo "FAIL: rpcboot health read a TLS-only port in plaintext"; exit 1
    fi
    set +e
    "$RPCBOOT_CLI" --tls_ca="$c/ca.crt" --tls_cert="$c/client.crt" health "$target" > "$work/cli.out" 2>&1
    rc=$?
    set -e
    [ $rc = 2 ] && grep -q "tls_cert and --tls_key go together" "$work/cli.out" ||
      { cat "$work/cli.out"; echo "FAIL: half a client certificate (exit $rc)"; exit 1; }
    # describe and call over Thrift, on the same certificates.
    "$RPCBOOT_CLI" --tls_ca="$c/ca.crt" --tls_cert="$c/client.crt" --tls_key="$c/client.key" \
      --protocol=thrift call "127.0.0.1:${thrift#thrift=}" rich.RichService/Mix \
      '{"a": "kRed", "b": "kGreen"}' > "$work/cli.out" 2>&1 ||
      { cat "$work/cli.out"; echo "FAIL: rpcboot call over Thrift and TLS"; exit 1; }
    grep -q '"kBlue"' "$work/cli.out" || { cat "$work/cli.out"; echo "FAIL: Mix over Thrift and TLS"; exit 1; }
    echo "rpcboot health (gRPC) and call (Thrift) over mutual TLS: OK"
  fi
elif [ "$mode" = reflection ]; then
  "$python" "$here/reflection_client.py" "${grpc#grpc=}" reflection-test-token
  # The rpcboot tool reads the schema the same way, with the token and not without it.
  if [ -n "${RPCBOOT_CLI:-}" ]; then
    target=127.0.0.1:${grpc#grpc=}
    if "$RPCBOOT_CLI" describe "$target" rich.RichService > "$work/cli.out" 2>&1; then
      echo "FAIL: rpcboot describe read the schema without a token"; exit 1
    fi
    grep -q "no reflection" "$work/cli.out" || { cat "$work/cli.out"; echo "FAIL: no reason given"; exit 1; }
    echo "reflection-test-token" > "$work/token"
    "$RPCBOOT_CLI" --token_file="$work/token" describe "$target" rich.RichService > "$work/cli.out"
    grep -q "rpc Mix(rich.MixRequest) returns (rich.MixResponse)" "$work/cli.out" ||
      { cat "$work/cli.out"; echo "FAIL: describe"; exit 1; }
    "$RPCBOOT_CLI" --token_file="$work/token" call "$target" rich.RichService/Mix \
      '{"a": "COLOR_RED", "b": "COLOR_GREEN"}' > "$work/cli.out"
    grep -q '"value": "COLOR_BLUE"' "$work/cli.out" || { cat "$work/cli.out"; echo "FAIL: call"; exit 1; }
    # The Thrift port's schema (rpcboot.ThriftReflection) is guarded the same way.
    target=127.0.0.1:${thrift#thrift=}
    if "$RPCBOOT_CLI" --protocol=thrift describe "$target" > "$work/cli.out" 2>&1; then
      echo "FAIL: rpcboot describe read the Thrift schema without a token"; exit 1
    fi
    grep -q "UNAUTHENTICATED" "$work/cli.out" || { cat "$work/cli.out"; echo "FAIL: no reason given (Thrift)"; exit 1; }
    "$RPCBOOT_CLI" --token_file="$work/token" --protocol=thrift call "$target" rich.RichService/Mix \
      '{"a": "kRed", "b": "kGreen"}' > "$work/cli.out"
    grep -q '"kBlue"' "$work/cli.out" || { cat "$work/cli.out"; echo "FAIL: call over Thrift"; exit 1; }
    echo "rpcboot describe and call with a token (gRPC and Thrift): OK"
  fi
elif [ "$mode" = java ]; then
  jars=/usr/share/java
  for jar in thrift slf4j-api; do
    [ -f "$jars/$jar.jar" ] || { echo "FAIL: $jars/$jar.jar missing: apt-get install libthrift-java libslf4j-java"; exit 1; }
  done
  command -v javac >/dev/null || { echo "FAIL: javac missing: apt-get install default-jdk-headless"; exit 1; }
  mkdir -p "$work/java" "$work/classes"
  for f in "$idl_dir"/*.thrift; do thrift --gen java -out "$work/java" "$f" 2>/dev/null; done
  cp="$jars/thrift.jar:$jars/slf4j-api.jar:$jars/slf4j-nop.jar"
  javac -nowarn -d "$work/classes" -cp "$cp" $(find "$work/java" -name '*.java') "$here/java/StockThriftClient.java" "$here/java/Checks.java"
  java -cp "$work/classes:$cp" StockThriftClient "${thrift#thrift=}"
elif [ "$mode" = java-grpc ]; then
  jars=/usr/share/java
  netty=(buffer codec codec-http codec-http2 codec-socks common handler handler-proxy resolver transport)
  cp=""
  for jar in grpc-api grpc-core grpc-netty grpc-protobuf grpc-protobuf-lite grpc-stub grpc-context \
             protobuf guava perfmark-api geronimo-annotation-1.3-spec "${netty[@]/#/netty-}"; do
    [ -f "$jars/$jar.jar" ] || { echo "FAIL: $jars/$jar.jar missing: run ./scripts/setup.sh (libgrpc-java libnetty-java libguava-java libperfmark-java libgeronimo-annotation-1.3-spec-java)"; exit 1; }
    cp+="$jars/$jar.jar:"
  done
  [ -x /usr/bin/grpc_java_plugin ] || { echo "FAIL: grpc_java_plugin missing: apt-get install protobuf-compiler-grpc-java-plugin"; exit 1; }
  command -v javac >/dev/null || { echo "FAIL: javac missing: apt-get install default-jdk-headless"; exit 1; }
  mkdir -p "$work/java" "$work/classes"
  "$protoc" -I"$idl_dir" --java_out="$work/java" --grpc-java_out="$work/java" \
    --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin "$idl_dir"/*.proto
  javac -nowarn -d "$work/classes" -cp "$cp" $(find "$work/java" -name '*.java') "$here/java/StockGrpcClient.java" "$here/java/Checks.java"
  java -cp "$work/classes:$cp" StockGrpcClient "${grpc#grpc=}"
elif [ "$mode" = node ] || [ "$mode" = node-tls ]; then
  command -v node >/dev/null || { echo "FAIL: node missing: run ./scripts/setup.sh (apt-get install nodejs npm)"; exit 1; }
  [ -d "$here/node/node_modules/@grpc/grpc-js" ] && [ -d "$here/node/node_modules/thrift" ] ||
    { echo "FAIL: tests/interop/node/node_modules missing: run ./scripts/setup.sh (npm ci there)"; exit 1; }
  mkdir -p "$work/js"
  # thrift's js generator suggests "binary" for list<i8> (a std::vector<int8_t> of numbers).
  for f in "$idl_dir"/*.thrift; do
    thrift --gen js:node -out "$work/js" "$f" > "$work/js.err" 2>&1 || { cat "$work/js.err"; echo "FAIL: thrift --gen js:node $f"; exit 1; }
  done
  certs=()
  [ "$mode" = node-tls ] && certs=("$work/certs")
  # The generated Thrift code requires "thrift" from where it lies: NODE_PATH finds the modules.
  NODE_PATH="$here/node/node_modules" node "$here/node/clients.js" "$idl_dir" "$work/js" "${grpc#grpc=}" "${thrift#thrift=}" "${certs[@]}"
  # The other way: rpcboot's Thrift channel (the `rpcboot call` tool) calls Node's Thrift server.
  if [ "$mode" = node ] && [ -n "${RPCBOOT_CLI:-}" ]; then
    NODE_PATH="$here/node/node_modules" node "$here/node/thrift_server.js" "$work/js" compact \
      "$work/node_server.ready" 2> "$work/node_server.err" &
    node_pid=$!
    trap 'kill -TERM $server_pid $node_pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
    for _ in $(seq 200); do
      [ -s "$work/node_server.ready" ] && break
      kill -0 $node_pid 2>/dev/null || { cat "$work/node_server.err"; echo "FAIL: node thrift server exited"; exit 1; }
      sleep 0.05
    done
    [ -s "$work/node_server.ready" ] || { echo "FAIL: node thrift server not listening after 10 s"; exit 1; }
    read -r node_thrift < "$work/node_server.ready"
    # node_call METHOD JSON: the tool's answer in cli.out, exit status as the tool's.
    node_call() {
      "$RPCBOOT_CLI" --protocol=thrift --schema="$idl_dir/rich_service.thrift.json" call \
        "127.0.0.1:${node_thrift#thrift=}" "rich.RichService/$1" "$2" > "$work/cli.out" 2>&1
    }
    # expect METHOD JSON TEXT: the call succeeds and its answer holds TEXT.
    expect() {
      node_call "$1" "$2" && grep -q -- "$3" "$work/cli.out" ||
        { cat "$work/cli.out"; echo "FAIL: $1 $2 on Node's Thrift server: want $3"; exit 1; }
    }
    expect Mix '{"a": "kRed", "b": "kGreen"}' '"kBlue"'
    expect Lookup '{"key": 5}' '"value": "node 5"'
    expect Lookup '{}' '{'
    if grep -q value "$work/cli.out"; then cat "$work/cli.out"; echo "FAIL: Lookup() has a value"; exit 1; fi
    expect Histogram '{"words": ["a", "b", "a"]}' '"a": 2'
    if node_call Notify '{"id": 7, "message": "hi", "color": "kRed"}' ||
       ! grep -q "FAILED_PRECONDITION: node refuses 7: hi (0)" "$work/cli.out"; then
      cat "$work/cli.out"; echo "FAIL: Node's RpcError must arrive as FAILED_PRECONDITION"; exit 1
    fi
    kill -TERM $node_pid
    wait $node_pid 2>/dev/null || true
    echo "rpcboot's Thrift channel calls Node's Thrift server: OK"
  fi
elif [ "$mode" = go ] || [ "$mode" = go-tls ]; then
  gopath=$work/gopath
  # go keeps its build cache under $HOME; without one, in the work directory.
  [ -n "${HOME:-}" ] || [ -n "${GOCACHE:-}" ] || export GOCACHE="$work/gocache"
  "$here/go/generate.sh" "$idl_dir" "$gopath" thrift "$protoc"
  mkdir -p "$gopath/src/client"
  cp "$here/go/client.go" "$gopath/src/client/"
  GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= go build -o "$work/go_client" client ||
    { echo "FAIL: the Go client does not build"; exit 1; }
  certs=()
  [ "$mode" = go-tls ] && certs=("$work/certs")
  "$work/go_client" "${grpc#grpc=}" "${thrift#thrift=}" "${certs[@]}"
else
  "$python" "$here/python_clients.py" "$work" "${grpc#grpc=}" "${thrift#thrift=}"
fi
kill -TERM $server_pid
wait $server_pid
trap - EXIT
echo "server stopped cleanly"
