#!/usr/bin/env python3
"""Checks what `helm template` rendered from deploy/helm/mayfly (deploy/lint.sh runs it).

    check.py SCENARIO RENDERED.yaml

Every scenario: the manifests agree with each other as deploy/lint.sh checks the
kustomize ones (selectors match the pods, ports and references exist), and the pods
keep deploy/kubernetes' settings (probes, security context). Then what the scenario's
values must have changed.
"""
import sys

import yaml


def main(scenario, path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    fail = []
    objs = {}
    for d in docs:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in d:
                fail.append(f"a document without {key}")
        objs[(d.get("kind"), d.get("metadata", {}).get("name"))] = d
    if fail:
        return fail

    def one(kind):
        found = [o for (k, _), o in objs.items() if k == kind]
        return found[0] if len(found) == 1 else None

    dep = one("Deployment")
    if dep is None:
        return ["want exactly one Deployment"]
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    labels = pod["metadata"]["labels"]
    if dep["spec"]["selector"]["matchLabels"].items() - labels.items():
        fail.append("Deployment: selector does not match the pod labels")
    c = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for src in c.get("envFrom", []):
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref in src and (kind, src[ref]["name"]) not in objs and src[ref]["name"] != "my-secret":
                fail.append(f"Deployment: envFrom {kind} {src[ref]['name']} is not rendered")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ports:
            fail.append(f"Deployment: {probe} is {get}, want {path} on a container port")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    for name in mounts:
        if name not in volumes:
            fail.append(f"Deployment: volumeMount {name} has no volume")
    if mounts.get("tmp", {}).get("mountPath") != "/tmp":
        fail.append("Deployment: no volume on /tmp (the root file system is read-only)")
    sc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    if sc.get("runAsUser") != 10001 or not sc.get("runAsNonRoot") or not csc.get("readOnlyRootFilesystem") \
            or csc.get("capabilities", {}).get("drop") != ["ALL"] or csc.get("allowPrivilegeEscalation") is not False:
        fail.append(f"Deployment: security context {sc} {csc}, want deploy/kubernetes' (uid 10001, read-only, no capabilities)")
    services = [o for (k, _), o in objs.items() if k == "Service"]
    for o in services:
        name = o["metadata"]["name"]
        if o["spec"]["selector"].items() - labels.items():
            fail.append(f"Service {name}: selector matches no pod of the Deployment")
        for p in o["spec"]["ports"]:
            if p["targetPort"] not in ports:
                fail.append(f"Service {name}: targetPort {p['targetPort']} is not a container port")
    published = {p["targetPort"] for o in services for p in o["spec"]["ports"]}
    for want in ("smtp", "submission", "submissions", "imaps", "pop3s", "http"):
        if want not in published:
            fail.append(f"no Service publishes {want}")
    pdb = one("PodDisruptionBudget")
    if pdb is not None and pdb["spec"]["selector"]["matchLabels"].items() - labels.items():
        fail.append("PodDisruptionBudget: selector matches no pod of the Deployment")
    cm = one("ConfigMap")
    config = cm["data"] if cm else {}
    for name, port in ports.items():
        if name == "metrics":
            addr = config.get("MAYFLY_METRICS_ADDR")
        else:
            addr = config.get(f"MAYFLY_{name.upper()}_ADDR")
        if addr != f":{port}":
            fail.append(f"ConfigMap: the {name} listener is {addr!r}, the container port {port}")
    secret = one("Secret")
    data = (secret or {}).get("stringData", {})

    def want(cond, msg):
        if not cond:
            fail.append(f"{scenario}: {msg}")

    replicas = dep["spec"]["replicas"]
    if scenario == "defaults":
        want(replicas == 1, f"{replicas} replicas, want 1")
        want(pdb is None, "a PodDisruptionBudget for one replica would block every drain")
        want("MAYFLY_REDIS_URL" not in data, "a Redis URL without one being given")
        want(config.get("MAYFLY_MEMORY_LIMIT") == "256MiB", "no MAYFLY_MEMORY_LIMIT below the pod's memory on the memory store")
        want("tls" not in volumes and "MAYFLY_TLS_CERT" not in config, "a TLS volume or setting without tls.secretName")
        want(c["image"] == "mayfly:v0.1.0", f"image {c['image']}, want mayfly:<appVersion>")
    elif scenario == "redis":
        want(replicas == 3, f"{replicas} replicas, want 3")
        want(data.get("MAYFLY_REDIS_URL") == "redis://redis:6379/0", "the Secret lacks the Redis URL")
        want(pdb is not None and pdb["spec"]["minAvailable"] == 1, "no PodDisruptionBudget with minAvailable 1")
        want("MAYFLY_MEMORY_LIMIT" not in config, "MAYFLY_MEMORY_LIMIT set on Redis")
    elif scenario == "tls":
        want(config.get("MAYFLY_TLS_CERT") == "/etc/mayfly/tls/tls.crt"
             and config.get("MAYFLY_TLS_KEY") == "/etc/mayfly/tls/tls.key", "the ConfigMap does not name the certificate")
        want(volumes.get("tls", {}).get("secret", {}).get("secretName") == "mayfly-tls", "no volume of Secret mayfly-tls")
        want(mounts.get("tls", {}).get("mountPath") == "/etc/mayfly/tls", "the certificate is not mounted on /etc/mayfly/tls")
        want(config.get("MAYFLY_DKIM_KEY") == "/etc/mayfly/dkim/dkim.pem"
             and volumes.get("dkim", {}).get("secret", {}).get("secretName") == "mayfly-dkim", "no DKIM key")
        want(c["image"] == "registry.example.org/mayfly:v1.2.3", f"image {c['image']}")
    elif scenario == "existing":
        want(secret is None, "a Secret rendered next to secret.existingSecret")
        refs = [s["secretRef"]["name"] for s in c["envFrom"] if "secretRef" in s]
        want(refs == ["my-secret"], f"envFrom Secrets {refs}, want my-secret")
        want(replicas == 2 and pdb is not None, "two replicas with a PodDisruptionBudget")
    else:
        fail.append(f"unknown scenario {scenario}")
    return fail


if __name__ == "__main__":
    problems = main(sys.argv[1], sys.argv[2])
    if problems:
        sys.exit("deploy/helm/mayfly: " + "\n".join(problems))
