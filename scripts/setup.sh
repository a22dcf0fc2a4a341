#!/usr/bin/env bash
# Installs every Debian 12 package rpcboot needs to build, test and run its demo.
# Idempotent: installs only what is missing. Never installs libboost-dev or libboost-all-dev:
# they pull Boost 1.74 headers, which conflict with libboost1.81-dev (Boost.PFR).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  libboost1.81-dev
  libthrift-dev thrift-compiler libevent-dev
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev libprotoc-dev protobuf-compiler
  libzookeeper-mt-dev zookeeper default-jre-headless default-jdk-headless
  libclang-14-dev clang-14 llvm-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev libspdlog-dev libfmt-dev libcpp-httplib-dev libssl-dev zlib1g-dev nlohmann-json3-dev
  python3-grpcio python3-protobuf python3-thrift python3-kazoo python3-h2
  libcurator-discovery-java libcurator-framework-java libcurator-client-java
  libcurator-recipes-java libthrift-java libslf4j-java libprotobuf-java
  uuid-dev netcat-openbsd nghttp2-client libnghttp2-dev liburing-dev
  chromium fonts-liberation python3-prometheus-client
  libsqlite3-dev sqlite3 postgresql libpqxx-dev
  golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
  protoc-gen-go protoc-gen-go-grpc golang-thrift-dev
  libgrpc-java protobuf-compiler-grpc-java-plugin libnetty-java libguava-java libperfmark-java
  libgeronimo-annotation-1.3-spec-java
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# Node.js and npm for the Node interop clients: Debian's, unless a Node.js with npm is there
# already (a NodeSource nodejs carries its own npm and conflicts with Debian's npm package).
if ! command -v npm >/dev/null; then missing+=(nodejs npm); fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
else
  echo "setup: installing ${#missing[@]} missing packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if dpkg-query -W -f='${Status}' libboost-dev 2>/dev/null | grep -q 'install ok installed'; then
  echo "setup: error: libboost-dev (Boost 1.74) is installed and conflicts with libboost1.81-dev;" \
       "remove it with: apt-get remove libboost-dev" >&2
  exit 1
fi

# The Node interop clients' modules (grpc-js, Apache Thrift's npm package), at the versions
# tests/interop/node/package-lock.json names; installed again only when that file changes.
node_dir=$(cd "$(dirname "$0")/../tests/interop/node" && pwd)
if ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.rpcboot-installed-lock"; then
  echo "setup: installing the Node interop modules (npm ci in tests/interop/node)"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$node_dir/package-lock.json" "$node_dir/node_modules/.rpcboot-installed-lock"
fi
echo "setup: done"
