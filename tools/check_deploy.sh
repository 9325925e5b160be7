#!/usr/bin/env bash
# Checks the fleet's deployment files without a cluster or a Docker engine (part of `make test`):
#
#   deploy/haproxy   `haproxy -c` with loopback values, then deploy/haproxy/smoke_test.py: the
#                    real haproxy on 127.0.0.1:8717 in front of three stand-ins (127.0.0.2-4)
#   deploy/k8s       kubernetes-validate --strict (schemas bundled in the package, no network)
#                    for the oldest and newest Kubernetes versions below, then consistency: the
#                    grace period covers preStop + drain_timeout_secs, ports, labels, Secret
#   deploy/docker    static only (it cannot be built here): the tarball it copies is the one
#                    tools/dist.sh makes, USER/EXPOSE/HEALTHCHECK present, exec forms valid JSON
#   every TOML file under deploy/ sets only keys of configs/*.toml, with the same types (an
#   integer may stand for a float; the server refuses an unknown key or another type)
#
# Needs `make setup` (tools/setup.sh): the haproxy package and .venv-tools with kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-tools
K8S_VERSIONS=(1.30.0 1.37.0)

fail() {
  echo "check_deploy: FAILED: $*" >&2
  exit 1
}

command -v haproxy >/dev/null || fail "haproxy is not installed: run \`make setup\`"
[ -x "$VENV/bin/kubernetes-validate" ] || fail "$VENV/bin/kubernetes-validate is missing: run \`make setup\`"

echo "check_deploy: $(haproxy -v | head -1)"
export DIARIST_LB_BIND=127.0.0.1:8717 DIARIST_BACKEND_1=127.0.0.2:8717 \
  DIARIST_BACKEND_2=127.0.0.3:8717 DIARIST_BACKEND_3=127.0.0.4:8717
haproxy -c -f deploy/haproxy/haproxy.cfg ||
  fail "haproxy -c rejects deploy/haproxy/haproxy.cfg (loopback values)"
DIARIST_LB_STATS_BIND=127.0.0.5:8404 haproxy -c -f deploy/haproxy/haproxy.cfg ||
  fail "haproxy -c rejects deploy/haproxy/haproxy.cfg with DIARIST_LB_STATS_BIND set"
if env -u DIARIST_BACKEND_1 haproxy -c -f deploy/haproxy/haproxy.cfg >/dev/null 2>&1; then
  fail "haproxy -c accepts deploy/haproxy/haproxy.cfg without DIARIST_BACKEND_1"
fi
unset DIARIST_LB_BIND DIARIST_BACKEND_1 DIARIST_BACKEND_2 DIARIST_BACKEND_3
timeout 90 python3 deploy/haproxy/smoke_test.py ||
  fail "deploy/haproxy/smoke_test.py (haproxy on loopback)"

echo "check_deploy: kubernetes-validate $("$VENV/bin/kubernetes-validate" --version)"
for v in "${K8S_VERSIONS[@]}"; do
  "$VENV/bin/kubernetes-validate" --strict -k "$v" deploy/k8s/*.yaml ||
    fail "deploy/k8s/*.yaml do not validate against Kubernetes $v (strict)"
done

"$VENV/bin/python" - <<'EOF' || fail "static checks (above)"
import fnmatch, glob, json, pathlib, re, sys, tomllib
import yaml

errors = []
def check(cond, what):
    if not cond:
        errors.append(what)

# TOML under deploy/: only keys the compiled-in defaults have, with the same types (diarist reads
# an integer where a float is expected, not the other way round).
def same_keys(name, got, defaults, at=""):
    for k, v in got.items():
        if k not in defaults:
            errors.append(f"{name}: unknown key {at}{k} (not in the defaults of configs/)")
        elif isinstance(v, dict) and isinstance(defaults[k], dict):
            same_keys(name, v, defaults[k], f"{at}{k}.")
        elif type(v) is not type(defaults[k]) and (type(v), type(defaults[k])) != (int, float):
            errors.append(f"{name}: {at}{k} is {type(v).__name__}, the default is {type(defaults[k]).__name__}")
defaults = {n: tomllib.loads(pathlib.Path(f"configs/{n}").read_text()) for n in ("server.toml", "diarist.toml")}
k8s = {p: list(yaml.safe_load_all(open(p))) for p in sorted(glob.glob("deploy/k8s/*.yaml"))}
objs = {d["kind"]: d for docs in k8s.values() for d in docs if d}
tomls = {f"deploy/k8s/configmap.yaml {n}": (n, tomllib.loads(t)) for n, t in objs["ConfigMap"]["data"].items()}
tomls["deploy/docker/server.toml"] = ("server.toml", tomllib.loads(pathlib.Path("deploy/docker/server.toml").read_text()))
for where, (n, t) in tomls.items():
    same_keys(where, t, defaults[n])

# Kubernetes: the pieces fit together.
server = tomllib.loads(objs["ConfigMap"]["data"]["server.toml"])
port = int(server["listen"].rsplit(":", 1)[1])
pod = objs["Deployment"]["spec"]["template"]
c = pod["spec"]["containers"][0]
pre = c["lifecycle"]["preStop"]["exec"]["command"]
check(pre[0] == "sleep", "deployment.yaml: preStop is `sleep N`")
need = int(pre[1]) + server["drain_timeout_secs"] + 5
check(pod["spec"]["terminationGracePeriodSeconds"] >= need,
      f"deployment.yaml: terminationGracePeriodSeconds < preStop + drain_timeout_secs + 5 s ({need})")
check(c["ports"][0]["containerPort"] == port, f"deployment.yaml: containerPort is not the listen port {port}")
check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "deployment.yaml: readiness is not /readyz")
check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "deployment.yaml: liveness is not /healthz")
check(any(v["mountPath"] == "/etc/diarist" for v in c["volumeMounts"]), "deployment.yaml: /etc/diarist is not mounted")
secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
check({k: (s["name"], s["key"]) for k, s in secrets.items()} == {
    "DIARIST_TOKEN": ("diarist-secrets", "token"),
    "DIARIST_CHECKPOINT_KEY": ("diarist-secrets", "checkpoint-key")},
    "deployment.yaml: DIARIST_TOKEN / DIARIST_CHECKPOINT_KEY not from diarist-secrets token / checkpoint-key")
labels = pod["metadata"]["labels"]
for kind, sel in (("Deployment", objs["Deployment"]["spec"]["selector"]["matchLabels"]),
                  ("Service", objs["Service"]["spec"]["selector"]),
                  ("PodDisruptionBudget", objs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])):
    check(sel.items() <= labels.items(), f"{kind}: selector {sel} does not match the pod labels {labels}")
check(objs["Service"]["spec"]["ports"][0]["port"] == port, "service.yaml: port is not the listen port")
check(objs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == objs["Deployment"]["metadata"]["name"],
      "hpa.yaml: scaleTargetRef is not the Deployment")
check(pod["metadata"]["annotations"].get("prometheus.io/port") == str(port), "deployment.yaml: scrape port")

# The archive Job: indexed, and its --shard names its own index and completion count.
job = objs["Job"]["spec"]
args = job["template"]["spec"]["containers"][0]["args"]
check(job["completionMode"] == "Indexed", "batch-job.yaml: completionMode is not Indexed")
shard = args[args.index("--shard") + 1] if "--shard" in args else ""
check(shard == f"$(DIARIST_SHARD)/{job['completions']}",
      f"batch-job.yaml: --shard {shard!r} is not $(DIARIST_SHARD)/completions ({job['completions']})")
env = {e["name"]: e.get("valueFrom", {}) for e in job["template"]["spec"]["containers"][0]["env"]}
check(env.get("DIARIST_SHARD", {}).get("fieldRef", {}).get("fieldPath")
      == "metadata.annotations['batch.kubernetes.io/job-completion-index']",
      "batch-job.yaml: DIARIST_SHARD is not the job completion index")
check("--skip-existing" in args, "batch-job.yaml: a retried pod does not resume (--skip-existing)")

# Docker: what it copies is what tools/dist.sh makes; the instructions it must have.
dist = pathlib.Path("tools/dist.sh").read_text()
version = tomllib.loads(pathlib.Path("Cargo.toml").read_text())["workspace"]["package"]["version"]
m = re.search(r"^name=(\S+)$", dist, re.M)
check(m is not None and '"dist/$name.tar.gz"' in dist, "tools/dist.sh: no `name=...` / dist/$name.tar.gz")
tarball = "dist/" + m.group(1).replace("$version", version) + ".tar.gz" if m else ""
text = pathlib.Path("deploy/docker/Dockerfile").read_text()
lines = re.sub(r"\\\n\s*", " ", text).splitlines()
ins = [l.split(None, 1) for l in lines if l.strip() and not l.lstrip().startswith("#")]
copies = [a.split()[0] for i, a in ins if i == "COPY" and not a.startswith("--from")]
check(any(fnmatch.fnmatch(tarball, c) for c in copies),
      f"Dockerfile: no COPY matches {tarball}, which tools/dist.sh makes (COPY sources: {copies})")
ignore = pathlib.Path("deploy/docker/Dockerfile.dockerignore").read_text().split()
for c in copies:
    check("!" + c in ignore, f"Dockerfile.dockerignore leaves out {c}")
for i, a in ins:
    if i in ("ENTRYPOINT", "CMD") or (i == "HEALTHCHECK" and " CMD " in a):
        form = a.split(" CMD ", 1)[1] if i == "HEALTHCHECK" else a
        try:
            check(isinstance(json.loads(form), list), f"Dockerfile: {i} is not an exec-form list")
        except json.JSONDecodeError as e:
            errors.append(f"Dockerfile: {i} is not valid JSON (Docker would run it through a shell): {e}")
kinds = {i: a for i, a in ins}
check(kinds.get("FROM", "").startswith("debian:bookworm-slim"), "Dockerfile: the last stage is not debian:bookworm-slim")
check(kinds.get("USER", "").split(":")[0] not in ("", "0", "root"), "Dockerfile: no non-root USER")
check(kinds.get("EXPOSE") == str(port), f"Dockerfile: EXPOSE is not {port}")
check("/healthz" in kinds.get("HEALTHCHECK", ""), "Dockerfile: no HEALTHCHECK on /healthz")
check(json.loads(kinds.get("ENTRYPOINT", "[]")) == ["diarist"], "Dockerfile: ENTRYPOINT is not [\"diarist\"]")
docker_server = tomllib.loads(pathlib.Path("deploy/docker/server.toml").read_text())
check(docker_server.get("listen") == f"0.0.0.0:{port}", "deploy/docker/server.toml: not listening on 0.0.0.0")

for e in errors:
    print(f"check_deploy: {e}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"check_deploy: static checks passed (Dockerfile copies {tarball}; k8s pieces consistent; TOML keys known)")
EOF
echo "check_deploy: all deployment checks passed"
