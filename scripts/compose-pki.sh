#!/bin/sh
# The docker-compose deployment's certificates and API keys (the one-shot `pki` service), made
# with `bora pki` exactly as an operator would on several machines:
#
#   CA_DIR   the CA and its private key; only this service mounts it, so no node can sign
#   PKI_DIR  ca.pem, each node's certificate and key, api-keys.json (hashes); mounted read-only
#            by etcd and the nodes
#
# Each node's certificate names its compose service (DNS SAN), which is the host name its peers
# dial; the coordinator's also localhost and 127.0.0.1, for clients on the host through the
# published port. The two API keys are printed once, here (`docker compose logs pki`): only their
# hashes are kept. Runs once: when PKI_DIR already has ca.pem (copied last) it does nothing.
set -eu
BORA="${BORA:-node dist/cli/bora.js}"
CA_DIR="${CA_DIR:-/ca}"
PKI_DIR="${PKI_DIR:-/pki}"

if [ -f "$PKI_DIR/ca.pem" ]; then
  echo "pki: $PKI_DIR already holds the cluster's certificates; nothing to do"
  exit 0
fi
mkdir -p "$CA_DIR" "$PKI_DIR"
[ -f "$CA_DIR/ca.pem" ] || $BORA pki init --dir "$CA_DIR" >/dev/null

# issue ROLE ID [--dns NAME | --ip ADDR]...: signs in CA_DIR, moves the pair to PKI_DIR.
issue() {
  role=$1
  id=$2
  shift 2
  $BORA pki issue --dir "$CA_DIR" --role "$role" --id "$id" "$@" >/dev/null
  mv "$CA_DIR/$role-$id.pem" "$CA_DIR/$role-$id-key.pem" "$PKI_DIR/"
}
issue etcd etcd --dns etcd
issue coordinator c1 --dns coordinator --dns localhost --ip 127.0.0.1
issue worker w1 --dns worker1
issue worker w2 --dns worker2
issue worker w3 --dns worker3
issue admin ops --dns localhost
issue client local --dns localhost

echo "pki: API keys, shown this once (only their hashes are stored):"
$BORA pki api-key --dir "$PKI_DIR" --role client --name client
$BORA pki api-key --dir "$PKI_DIR" --role admin --name admin
cp "$CA_DIR/ca.pem" "$PKI_DIR/ca.pem"
echo "pki: certificates in $PKI_DIR"
