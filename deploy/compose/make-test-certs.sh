#!/bin/sh
# Test certificates for the TLS-only Redis of sentinel-tls.yml and cluster-tls.yml: a private CA
# and one server certificate it signs, naming every Redis and Sentinel container of both files.
# NOT for production: the CA key lies beside the certificates, and the server key is readable
# by everyone (the Redis containers run as another user than yours, uid 999).
#
#   sh deploy/compose/make-test-certs.sh "$PWD/redis-tls"
#   export REDIS_TLS_DIR="$PWD/redis-tls"
#
# It writes, in that directory (created if missing):
#   ca.crt       the CA certificate: what chat-server checks Redis against (CHAT__REDIS__TLS_CA_FILE)
#   ca.key       the CA's private key (only needed to sign more certificates)
#   redis.crt    the server certificate of every Redis and Sentinel (and their client certificate
#   redis.key    towards each other), for the names below, valid 30 days
#
# The same by hand, with the names of your own servers in subjectAltName: every name or address
# a client dials must be in it. chat-server checks the name it connects to: the host of the URL,
# the primary's address as Sentinel announces it, and each node's address as the cluster
# announces it (hence `announce-hostnames` and `cluster-announce-hostname` in the compose files).
set -eu

dir=${1:?usage: make-test-certs.sh DIRECTORY}
days=${DAYS:-30}
names="DNS:localhost,IP:127.0.0.1"
for index in 1 2 3 4 5 6; do names="$names,DNS:redis-$index"; done
for index in 1 2 3; do names="$names,DNS:sentinel-$index"; done

mkdir -p "$dir"
cd "$dir"
cat >openssl.cnf <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = chat-server test Redis CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
# clientAuth too: replicas, Sentinels and cluster nodes present it when they connect to each other.
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $names
authorityKeyIdentifier = keyid
EOF
# P-256 keys; -nodes: no passphrase (Redis reads the key at start).
openssl req -config openssl.cnf -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.crt -days "$days" -extensions ca
openssl req -config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout redis.key -out redis.csr -subj /CN=redis
openssl x509 -req -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out redis.crt \
  -days "$days" -extfile openssl.cnf -extensions server
rm -f redis.csr openssl.cnf ca.srl
# Readable by the containers' users (Redis: uid 999, chat-server: uid 10001). Test keys only.
chmod 0644 ca.crt redis.crt redis.key
chmod 0600 ca.key
openssl verify -CAfile ca.crt redis.crt
