#!/bin/bash
# Makes the certificates the TLS tests and benchmarks use, with the openssl command, in $1:
#   ca.crt/key          the test CA
#   server.crt/key      signed by it, for 127.0.0.1 and localhost (CN=shop)
#   client.crt/key      signed by it, CN=order (a client certificate for mutual TLS)
#   ops.crt/key         signed by it, CN=ops, subjectAltName URI:spiffe://acme/ops
#   expired.crt/key     signed by it for 127.0.0.1, valid only in 2020
#   wronghost.crt/key   signed by it for other.example only
#   rogue-ca.crt        another CA; rogue.crt/key: a client certificate signed by it
set -euo pipefail
dir=${1:?usage: make-test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
command -v openssl >/dev/null || { echo "make-test-certs: openssl missing (apt-get install openssl)" >&2; exit 1; }
quiet() { "$@" >/dev/null 2>&1 || { echo "make-test-certs: failed: $*" >&2; "$@"; exit 1; }; }

ca() {  # name subject
  quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -keyout "$1.key" -out "$1.crt" -subj "$2"
}
leaf() {  # name subject san [ca]
  local issuer=${4:-ca}
  quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "$2"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n%s\n' \
    "${3:+subjectAltName=$3}" > "$1.ext"
  quiet openssl x509 -req -in "$1.csr" -CA "$issuer.crt" -CAkey "$issuer.key" -CAcreateserial \
    -days 825 -extfile "$1.ext" -out "$1.crt"
  rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=rpcboot test CA"
leaf server "/CN=shop" "IP:127.0.0.1,DNS:localhost"
leaf client "/CN=order" ""
leaf ops "/CN=ops" "URI:spiffe://acme/ops"
leaf wronghost "/CN=other" "DNS:other.example"
ca rogue-ca "/CN=rogue CA"
leaf rogue "/CN=order" "" rogue-ca

# Expired: openssl ca can date a certificate in the past.
mkdir -p expired-ca
: > expired-ca/index.txt
echo 1000 > expired-ca/serial
cat > expired-ca/ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = expired-ca
database = expired-ca/index.txt
serial = expired-ca/serial
new_certs_dir = expired-ca
certificate = ca.crt
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = leaf
[any]
commonName = supplied
[leaf]
basicConstraints = CA:FALSE
subjectAltName = IP:127.0.0.1,DNS:localhost
CNF
quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout expired.key -out expired.csr -subj "/CN=shop"
quiet openssl ca -batch -config expired-ca/ca.cnf -in expired.csr -out expired.crt \
  -startdate 20200101000000Z -enddate 20200102000000Z
rm -rf expired.csr expired-ca ca.srl rogue-ca.srl
echo "certificates in $dir"
