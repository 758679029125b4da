#!/bin/sh
# The Kubernetes deployment's certificates and API keys, made with `bora pki` (docs/security.md),
# and the Secrets that carry them:
#
#   bora-etcd-tls         ca.pem, etcd-etcd.pem/-key.pem   valid for every etcd member and bora-etcd-client
#   bora-coordinator-tls  ca.pem, coordinator-bora-coordinator-N.pem/-key.pem, one per coordinator
#   bora-worker-tls       ca.pem, worker-bora-worker-N.pem/-key.pem, one per worker the HPA may start
#   bora-admin-tls        ca.pem, admin-ops.pem/-key.pem   for the etcd-rbac Job and operators
#   bora-api-keys         api-keys.json                    hashes only; the keys are printed once, here
#
# A node's id is its pod's name (the StatefulSets' ordinals) and each certificate names the pod's
# DNS name, which is the name its peers dial and check. The CA's private key stays in $OUT/ca on
# this machine: keep it offline; no Secret holds it.
#
# Usage: deploy/k8s/make-secrets.sh            (needs kubectl with access to the cluster)
#   OUT=DIR           where the files go (default ./bora-pki); an existing CA there is reused
#   NAMESPACE=bora  CLUSTER_DOMAIN=cluster.local  WORKERS=8  COORDINATORS=2  ETCD_MEMBERS=3
#   APPLY=0           only write the files (and $OUT/secrets.yaml), apply nothing
#   BORA="npx bora"   the bora command (default: node dist/cli/bora.js from the repository root)
# Running it again keeps the CA and the API keys, and issues only certificates that are missing
# (raise WORKERS and rerun to allow more workers; then rerun the etcd-rbac Job with them too).
set -eu
BORA="${BORA:-node dist/cli/bora.js}"
OUT="${OUT:-./bora-pki}"
NAMESPACE="${NAMESPACE:-bora}"
CLUSTER_DOMAIN="${CLUSTER_DOMAIN:-cluster.local}"
WORKERS="${WORKERS:-8}"
COORDINATORS="${COORDINATORS:-2}"
ETCD_MEMBERS="${ETCD_MEMBERS:-3}"
APPLY="${APPLY:-1}"
KUBECTL="${KUBECTL:-kubectl}"
SVC="$NAMESPACE.svc.$CLUSTER_DOMAIN"

mkdir -p "$OUT/ca" "$OUT/etcd" "$OUT/coordinator" "$OUT/worker" "$OUT/admin" "$OUT/api-keys"
chmod 700 "$OUT/ca"
[ -f "$OUT/ca/ca.pem" ] || $BORA pki init --dir "$OUT/ca" >/dev/null

# issue SECRET_DIR ROLE ID [--dns NAME | --ip ADDR]...: signs with the CA, moves the pair to SECRET_DIR.
issue() {
  dir=$1
  role=$2
  id=$3
  shift 3
  [ -f "$OUT/$dir/$role-$id.pem" ] && return 0
  $BORA pki issue --dir "$OUT/ca" --role "$role" --id "$id" "$@" >/dev/null
  mv "$OUT/ca/$role-$id.pem" "$OUT/ca/$role-$id-key.pem" "$OUT/$dir/"
}

set --
i=0
while [ "$i" -lt "$ETCD_MEMBERS" ]; do
  set -- "$@" --dns "bora-etcd-$i.bora-etcd.$SVC"
  i=$((i + 1))
done
issue etcd etcd etcd "$@" --dns "bora-etcd-client.$SVC" --dns "bora-etcd-client.$NAMESPACE.svc" --dns localhost --ip 127.0.0.1

i=0
while [ "$i" -lt "$COORDINATORS" ]; do
  # Its pod name for the workers and the other coordinator; bora-api for clients in the cluster;
  # localhost for `kubectl port-forward`.
  issue coordinator coordinator "bora-coordinator-$i" --dns "bora-coordinator-$i.bora-coordinator.$SVC" \
    --dns bora-api --dns "bora-api.$NAMESPACE" --dns "bora-api.$NAMESPACE.svc" --dns "bora-api.$SVC" --dns localhost --ip 127.0.0.1
  i=$((i + 1))
done

i=0
while [ "$i" -lt "$WORKERS" ]; do
  issue worker worker "bora-worker-$i" --dns "bora-worker-$i.bora-worker.$SVC"
  i=$((i + 1))
done

issue admin admin ops --dns localhost

if [ ! -f "$OUT/api-keys/api-keys.json" ]; then
  echo "make-secrets: API keys, shown this once (only their hashes are stored):"
  $BORA pki api-key --dir "$OUT/api-keys" --role client --name client
  $BORA pki api-key --dir "$OUT/api-keys" --role admin --name admin
fi
for dir in etcd coordinator worker admin; do cp "$OUT/ca/ca.pem" "$OUT/$dir/ca.pem"; done

# The Secrets as one manifest ($OUT/secrets.yaml: it holds private keys, keep it like them).
secret() {
  name=$1
  dir=$2
  echo "---"
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n  labels: { app.kubernetes.io/part-of: bora }\ntype: Opaque\ndata:\n' "$name" "$NAMESPACE"
  for f in "$OUT/$dir"/*; do
    printf '  %s: %s\n' "$(basename "$f")" "$(base64 < "$f" | tr -d '\n')"
  done
}
umask 077
{
  secret bora-etcd-tls etcd
  secret bora-coordinator-tls coordinator
  secret bora-worker-tls worker
  secret bora-admin-tls admin
  secret bora-api-keys api-keys
} > "$OUT/secrets.yaml"

if [ "$APPLY" = "1" ]; then
  $KUBECTL apply -f "$(dirname "$0")/namespace.yaml"
  $KUBECTL apply -f "$OUT/secrets.yaml"
fi
echo "make-secrets: files in $OUT (the CA key in $OUT/ca: keep it offline); Secrets in $OUT/secrets.yaml"
