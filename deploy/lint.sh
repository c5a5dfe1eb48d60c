#!/usr/bin/env bash
# Checks the files in deploy/ without a container runtime, a cluster or a registry
# (`make lint` runs it): the compose file, the Kubernetes manifests, the Helm chart,
# the container image (built without a daemon) and the systemd unit. Installs what it
# needs when missing (Debian packages, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
# kustomize v5.8 needs Go 1.27; v5.7.1 builds with the Go this repository uses.
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.7.1}
HELM_VERSION=${HELM_VERSION:-v4.3.2}
STATICCHECK_VERSION=${STATICCHECK_VERSION:-v0.8.2}

need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
python3 -c 'import yaml' >/dev/null 2>&1 || need+=(python3 python3-yaml)
# Compose v2 (`docker compose`) when it is there. Debian 12 has no package of it, so
# otherwise Debian's docker-compose 1.29, which validates the same file; without
# recommends it is the Python tool alone, no Docker daemon.
compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  need+=(docker-compose)
  compose=(docker-compose)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "deploy/lint.sh: installing ${need[*]}" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "deploy/lint.sh: need root to apt-get install ${need[*]}; install it and run again" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every YAML file parses, and the manifests agree with each other: names that are
# referred to exist, Services select the Deployment's pods and name its ports.
python3 - <<'EOF'
import glob, sys, yaml

fail = []
docs = {}
for path in sorted(glob.glob("deploy/**/*.yaml", recursive=True)):
    # Helm templates are YAML only once rendered: the helm section below checks them.
    if path.startswith("deploy/helm/mayfly/templates/"):
        continue
    try:
        with open(path) as f:
            docs[path] = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        fail.append(f"{path}: {e}")
if fail:
    sys.exit("\n".join(fail))

kdir = "deploy/kubernetes/"
kust = docs[kdir + "kustomization.yaml"][0]
objs = {}
for res in kust["resources"]:
    if kdir + res not in docs:
        fail.append(f"kustomization.yaml: resource {res} does not exist")
        continue
    for d in docs[kdir + res]:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in d:
                fail.append(f"{res}: a document without {key}")
        objs[(d.get("kind"), d.get("metadata", {}).get("name"))] = d
for path in docs:
    if path.startswith(kdir) and path[len(kdir):] not in kust["resources"] + ["kustomization.yaml"]:
        fail.append(f"{path} is not in kustomization.yaml")

dep = objs[("Deployment", "mayfly")]
pod = dep["spec"]["template"]
labels = pod["metadata"]["labels"]
if dep["spec"]["selector"]["matchLabels"].items() - labels.items():
    fail.append("Deployment: selector does not match the pod labels")
ports = {}
for c in pod["spec"]["containers"]:
    ports.update({p["name"]: p["containerPort"] for p in c.get("ports", [])})
    for src in c.get("envFrom", []):
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref in src and (kind, src[ref]["name"]) not in objs:
                fail.append(f"Deployment: envFrom {kind} {src[ref]['name']} is not in the kustomization")
    for probe in ("readinessProbe", "livenessProbe"):
        port = c.get(probe, {}).get("httpGet", {}).get("port")
        if port not in ports and port not in ports.values():
            fail.append(f"Deployment: {probe} port {port} is not a container port")
    volumes = {v["name"] for v in pod["spec"].get("volumes", [])}
    for m in c.get("volumeMounts", []):
        if m["name"] not in volumes:
            fail.append(f"Deployment: volumeMount {m['name']} has no volume")
for (kind, name), o in objs.items():
    if kind == "Service":
        if o["spec"]["selector"].items() - labels.items():
            fail.append(f"Service {name}: selector matches no pod of the Deployment")
        for p in o["spec"]["ports"]:
            if p["targetPort"] not in ports and p["targetPort"] not in ports.values():
                fail.append(f"Service {name}: targetPort {p['targetPort']} is not a container port")
    if kind == "PodDisruptionBudget" and o["spec"]["selector"]["matchLabels"].items() - labels.items():
        fail.append(f"PodDisruptionBudget {name}: selector matches no pod of the Deployment")
if fail:
    sys.exit("\n".join(fail))
EOF

# kustomize builds the manifests as `kubectl apply -k` would.
"$GO" run "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" build deploy/kubernetes >/dev/null

# The Helm chart: helm lint, and helm template with a few sets of values, each checked
# by deploy/helm/check.py. helm is built from the Go module proxy (minutes the first
# time, then cached like any go run).
helm() { GOFLAGS= "$GO" run "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" "$@"; }
chart=deploy/helm/mayfly
helm lint --strict --quiet "$chart" >"$tmp/helm.txt" 2>&1 || { cat "$tmp/helm.txt" >&2; exit 1; }
helm lint --strict --quiet "$chart" --set replicaCount=3,secret.redisURL=redis://redis:6379/0 >"$tmp/helm.txt" 2>&1 ||
  { cat "$tmp/helm.txt" >&2; exit 1; }
render() {
  local scenario=$1
  shift
  helm template mayfly "$chart" --namespace mayfly "$@" >"$tmp/$scenario.yaml"
  python3 deploy/helm/check.py "$scenario" "$tmp/$scenario.yaml"
}
render defaults
render redis --set replicaCount=3 --set secret.redisURL=redis://redis:6379/0
render tls --set tls.secretName=mayfly-tls --set dkim.secretName=mayfly-dkim \
  --set image.repository=registry.example.org/mayfly --set image.tag=v1.2.3
render existing --set replicaCount=2 --set secret.existingSecret=my-secret
# Values that must not render, each with a message that says what to set.
refuse() {
  local want=$1
  shift
  if helm template mayfly "$chart" "$@" >/dev/null 2>"$tmp/helm.txt"; then
    echo "$chart: rendered with $*; want a refusal" >&2
    exit 1
  fi
  grep -qF "$want" "$tmp/helm.txt" || { echo "$chart: $* refused without saying \"$want\":" >&2; cat "$tmp/helm.txt" >&2; exit 1; }
}
refuse "replicaCount 3 needs a shared store: set secret.redisURL" --set replicaCount=3
refuse "config.MAYFLY_HTTP_ADDR is the chart's to set" --set config.MAYFLY_HTTP_ADDR=:80
refuse "config.DOMAINS: the ConfigMap holds MAYFLY_* settings only" --set config.DOMAINS=example.org

# The container image: deploy/image builds it without a daemon and its test checks
# what is in it (the files, the user, the entrypoint, the labels, the binary's
# version, two builds the same bytes) and that deploy/Dockerfile says the same.
(cd deploy/image && GOFLAGS= "$GO" vet ./... &&
  GOFLAGS= "$GO" run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./... &&
  GOFLAGS= "$GO" test -count=1 ./...)

# The compose file is valid and interpolates; MAYFLY_SECRET is required, so give it one.
MAYFLY_SECRET=lint-only-not-a-secret "${compose[@]}" -f deploy/compose.yaml config -q

# systemd-analyze verify checks that ExecStart's binary exists: verify a copy of the
# unit that runs a freshly built one. Unknown keys are only warnings to it, so any
# complaint about the unit fails the check. The hardening must keep the exposure
# score `systemd-analyze security` gives at 2.0 ("OK") or below.
# Built as the image's test builds it (-trimpath, no VCS stamp), so the two share
# every compiled package and only link twice.
CGO_ENABLED=0 GOFLAGS= "$GO" build -trimpath -buildvcs=false -o "$tmp/mayfly" ./cmd/mayfly
sed "s|^ExecStart=/usr/local/bin/mayfly |ExecStart=$tmp/mayfly |" deploy/systemd/mayfly.service >"$tmp/mayfly.service"
grep -q "^ExecStart=$tmp/mayfly " "$tmp/mayfly.service" || {
  echo "deploy/systemd/mayfly.service: want ExecStart=/usr/local/bin/mayfly serve ..." >&2
  exit 1
}
out=$(systemd-analyze verify "$tmp/mayfly.service" 2>&1) || { echo "$out" >&2; exit 1; }
if grep -q 'mayfly\.service' <<<"$out"; then
  echo "$out" >&2
  exit 1
fi
systemd-analyze security --offline=yes --threshold=20 "$tmp/mayfly.service" >"$tmp/security.txt" 2>&1 || {
  tail -n 3 "$tmp/security.txt" >&2
  echo "deploy/systemd/mayfly.service: exposure above 2.0; systemd-analyze security --offline=yes lists what is open" >&2
  exit 1
}

# The examples name only settings mayfly has (compose's own two variables aside).
"$tmp/mayfly" serve -help >"$tmp/help.txt" 2>&1
# Of the rendered charts, the keys only: a comment names the variables Service links add.
unknown=$({ grep -ohE 'MAYFLY_[A-Z0-9_]+' deploy/compose.yaml deploy/compose.env.example \
  deploy/systemd/mayfly.env deploy/kubernetes/configmap.yaml deploy/kubernetes/secret.yaml \
  deploy/helm/mayfly/values.yaml
  grep -ohE '^ +MAYFLY_[A-Z0-9_]+:' "$tmp"/{defaults,redis,tls,existing}.yaml | tr -d ' :'; } |
  sort -u | grep -vxE 'MAYFLY_(HTTP_PUBLISH|IMAGE)' | while read -r v; do
    grep -q "($v," "$tmp/help.txt" || echo "$v"
  done)
if [ -n "$unknown" ]; then
  echo "deploy/: settings mayfly does not have:" $unknown >&2
  exit 1
fi
echo "deploy/: compose file, Kubernetes manifests, Helm chart, image and systemd unit check out"
