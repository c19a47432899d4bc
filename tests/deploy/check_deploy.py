"""Checks deploy/ and dashboards/ with the tools that consume them; run by `cargo xtask test`.

- both kustomize overlays render (kubectl kustomize) and every object validates, strictly,
  against the Kubernetes schemas of three recent versions (kubernetes-validate);
- checkov reports no failed check (its findings that are inherent to an eBPF sensor are
  skipped in the manifests with a reason, and listed here);
- the overlays differ only in the mode, and the PrometheusRule matches the plain rules file;
- the Grafana dashboard is well formed (schema version, unique panel ids, datasource variable,
  an instance variable, a unit and a description on every panel).
Usage: check_deploy.py REPO_ROOT
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(sys.argv[1])
K8S_VERSIONS = ["1.35.0", "1.36.0", "1.37.0"]
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def check_overlay(name, tmp):
    r = run(["kubectl", "kustomize", str(ROOT / "deploy/kubernetes/overlays" / name)])
    if r.returncode != 0:
        fail(f"kubectl kustomize {name}: {r.stderr.strip()}")
        return None
    path = Path(tmp) / f"{name}.yaml"
    path.write_text(r.stdout)
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    core = [d for d in docs if (d["apiVersion"], d["kind"]) not in CRDS]
    print(f"ok   kubectl kustomize {name}: {len(docs)} objects ({', '.join(d['kind'] for d in docs)})")
    for v in K8S_VERSIONS:
        r = run(["kubernetes-validate", "--strict", "-k", v, str(path)])
        passed = r.stdout.count("passed for resource")
        if r.returncode != 0 or passed != len(core):
            fail(f"kubernetes-validate {name} against {v}: {passed}/{len(core)} passed\n{r.stdout}{r.stderr}")
        else:
            print(f"ok   kubernetes-validate --strict {name} against {v}: {passed}/{len(core)} objects")
    # Not --quiet: it drops the skipped checks from the JSON report.
    r = run(["checkov", "-f", str(path), "--framework", "kubernetes", "-o", "json", "--compact"])
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        fail(f"checkov {name}: no JSON report\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        return docs
    summary = report.get("summary", {})
    failed = report.get("results", {}).get("failed_checks", [])
    if summary.get("failed", 1) != 0:
        for f in failed:
            fail(f"checkov {name}: {f['check_id']} {f['check_name']} ({f['resource']})")
    else:
        skipped = report.get("results", {}).get("skipped_checks", [])
        print(f"ok   checkov {name}: {summary.get('passed')} passed, 0 failed, {len(skipped)} skipped with a reason:")
        for s in skipped:
            print(f"       {s['check_id']}: {s.get('check_result', {}).get('suppress_comment', '')}")
    return docs


def daemonset_args(docs):
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    return ds["spec"]["template"]["spec"]["containers"][0]["args"]


def check_rules():
    plain = yaml.safe_load((ROOT / "deploy/prometheus/mxsentry-rules.yml").read_text())
    crd = yaml.safe_load((ROOT / "deploy/kubernetes/base/prometheusrule.yaml").read_text())
    if plain["groups"] != crd["spec"]["groups"]:
        fail("deploy/kubernetes/base/prometheusrule.yaml differs from deploy/prometheus/mxsentry-rules.yml")
    else:
        print("ok   PrometheusRule matches deploy/prometheus/mxsentry-rules.yml")


def check_dashboard(path):
    d = json.loads(path.read_text())
    if d.get("schemaVersion", 0) < 36:
        fail(f"{path.name}: schemaVersion {d.get('schemaVersion')} is older than Grafana 9")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        fail(f"{path.name}: no datasource variable")
    if "instance" not in variables and "node" not in variables:
        fail(f"{path.name}: no instance/node variable")
    ids = []
    panels = list(d.get("panels", []))
    for p in panels:
        panels.extend(p.get("panels", []))
    for p in panels:
        ids.append(p.get("id"))
        if p.get("type") == "row":
            continue
        where = f"{path.name} panel {p.get('id')} {p.get('title')!r}"
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"{where}: datasource is not the ${{datasource}} variable")
        if not p.get("description"):
            fail(f"{where}: no description")
        if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            fail(f"{where}: no unit")
        for t in p.get("targets", []):
            if not t.get("expr"):
                fail(f"{where}: target without a query")
            if t.get("datasource", {}).get("uid") not in (None, "${datasource}"):
                fail(f"{where}: target datasource is not the variable")
    if len(ids) != len(set(ids)) or None in ids:
        fail(f"{path.name}: panel ids not unique: {ids}")
    print(f"ok   {path.name}: schemaVersion {d['schemaVersion']}, {len(panels)} panels, unique ids, datasource and instance variables")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        monitor = check_overlay("monitor", tmp)
        enforce = check_overlay("enforce", tmp)
        if monitor and enforce:
            m, e = daemonset_args(monitor), daemonset_args(enforce)
            if "--mode=enforce" in m or e != m + ["--mode=enforce"]:
                fail(f"overlays: monitor args {m}, enforce args {e}")
            else:
                print("ok   overlays differ only in --mode=enforce")
    check_rules()
    for dash in sorted((ROOT / "dashboards").glob("*.json")):
        check_dashboard(dash)
    if failures:
        print(f"{len(failures)} deployment check(s) failed")
        sys.exit(1)


main()
