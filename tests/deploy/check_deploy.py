"""Checks deploy/ and dashboards/ with the tools that consume them; run by `cargo xtask deploy`.

- every kustomize overlay (monitor, enforce, canary) renders with `kubectl kustomize`, and so
  does the canary with every optional component (legacy AppArmor annotation, GKE quota,
  Prometheus Operator labels); every object validates strictly with kubernetes-validate
  against every Kubernetes version the rendering claims (1.30+ with the appArmorProfile
  field, 1.25+ with the legacy component), and checkov reports no failed check (the
  findings inherent to an eBPF sensor are skipped in the manifest with a reason, and listed);
- the mode has one source: no DaemonSet passes --mode, each DaemonSet's ConfigMap says the
  mode its overlay promises, and every ConfigMap holds the base's config but for the mode;
- the canary's DaemonSets take disjoint nodes and never select each other's pods;
- every DaemonSet pins its image by digest (IfNotPresent), names its node from the downward
  API, and is set up for AppArmor and SELinux nodes;
- the NetworkPolicy admits the monitoring namespace only;
- the PrometheusRule matches the plain rules file, and every runbook_url is the base from
  settings.yaml plus an anchor that docs/runbook.md has;
- the Grafana dashboard is well formed (schema version, unique panel ids, datasource and node
  variables, a Grafana unit and a description on every panel).
Usage: check_deploy.py REPO_ROOT
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(sys.argv[1])
K8S = ROOT / "deploy/kubernetes"
MODERN = [f"1.{m}.0" for m in range(30, 38)]  # the appArmorProfile field is GA in 1.30
LEGACY = [f"1.{m}.0" for m in range(25, 30)]
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
# The mode each overlay's DaemonSets run in.
MODES = {
    "monitor": {"mxsentry": "monitor"},
    "enforce": {"mxsentry": "enforce"},
    "canary": {"mxsentry": "monitor", "mxsentry-enforce": "enforce"},
}
COMPONENTS = ["legacy-apparmor", "gke-critical-pods", "operator-labels"]
# Grafana's unit ids (packages/grafana-data/src/valueFormats/categories.ts), the ones a
# dashboard of counts, rates, durations and sizes can use. "eps" is not one.
GRAFANA_UNITS = {
    "none", "short", "percent", "percentunit", "locale", "bytes", "decbytes", "bits",
    "cps", "ops", "reqps", "rps", "wps", "iops", "cpm", "opm", "pps", "Bps", "bps",
    "ns", "µs", "ms", "s", "m", "h", "d", "dtdurations", "dtdurationms", "hertz",
}
CUSTOM_UNIT = re.compile(r"^(suffix|prefix|si|count|time|currency):.+")
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


def ok(msg):
    print(f"ok   {msg}")


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def render(name, path, tmp):
    r = run(["kubectl", "kustomize", str(path)])
    if r.returncode != 0:
        fail(f"kubectl kustomize {name}: {r.stderr.strip()}")
        return None, None
    out = Path(tmp) / f"{name.replace(' ', '_').replace('+', 'with')}.yaml"
    out.write_text(r.stdout)
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    ok(f"kubectl kustomize {name}: {len(docs)} objects ({', '.join(d['kind'] for d in docs)})")
    return docs, out


def validate(name, path, docs, versions):
    core = [d for d in docs if (d["apiVersion"], d["kind"]) not in CRDS]
    for v in versions:
        r = run(["kubernetes-validate", "--strict", "-k", v, str(path)])
        passed = r.stdout.count("passed for resource")
        if r.returncode != 0 or passed != len(core):
            fail(f"kubernetes-validate {name} against {v}: {passed}/{len(core)} passed\n{r.stdout}{r.stderr}")
            return
    ok(f"kubernetes-validate --strict {name} against {versions[0]}..{versions[-1]} ({len(versions)} versions): {len(core)} objects each")


def checkov(name, path):
    # Not --quiet: it drops the skipped checks from the JSON report.
    r = run(["checkov", "-f", str(path), "--framework", "kubernetes", "-o", "json", "--compact"])
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        fail(f"checkov {name}: no JSON report\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        return
    summary = report.get("summary", {})
    results = report.get("results", {})
    if summary.get("failed", 1) != 0:
        for f in results.get("failed_checks", []):
            fail(f"checkov {name}: {f['check_id']} {f['check_name']} ({f['resource']})")
        return
    skipped = results.get("skipped_checks", [])
    ok(f"checkov {name}: {summary.get('passed')} passed, 0 failed, {len(skipped)} skipped with a reason:")
    for s in sorted({(s["check_id"], s.get("check_result", {}).get("suppress_comment", "")) for s in skipped}):
        print(f"       {s[0]}: {s[1]}")


def of_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(ds):
    return ds["spec"]["template"]["spec"]["containers"][0]


def config_of(docs, ds):
    vol = next(v for v in ds["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    cm = of_kind(docs, "ConfigMap")[vol["configMap"]["name"]]
    return tomllib.loads(cm["data"]["mxsentry.toml"])


def check_modes(name, docs):
    """One source for the mode: the ConfigMap each DaemonSet mounts, set as promised."""
    base = tomllib.loads((K8S / "base/agent/mxsentry.toml").read_text())
    want = MODES[name.split(" ")[0]]
    daemonsets = of_kind(docs, "DaemonSet")
    if set(daemonsets) != set(want):
        fail(f"{name}: DaemonSets {sorted(daemonsets)}, want {sorted(want)}")
        return
    for ds_name, mode in want.items():
        ds = daemonsets[ds_name]
        args = container(ds).get("args", [])
        if any(a.startswith("--mode") for a in args):
            fail(f"{name}: DaemonSet {ds_name} passes {args}: the mode belongs in its ConfigMap only")
        cfg = config_of(docs, ds)
        if cfg["agent"]["mode"] != mode:
            fail(f"{name}: DaemonSet {ds_name} runs mode {cfg['agent']['mode']!r}, want {mode!r}")
        rest = {**cfg, "agent": {k: v for k, v in cfg["agent"].items() if k != "mode"}}
        base_rest = {**base, "agent": {k: v for k, v in base["agent"].items() if k != "mode"}}
        if rest != base_rest:
            fail(f"{name}: DaemonSet {ds_name}'s config differs from base/agent/mxsentry.toml beyond the mode")
    ok(f"{name}: modes {want} from the ConfigMaps, no --mode flag, same config otherwise")


def node_terms(ds):
    aff = ds["spec"]["template"]["spec"].get("affinity", {}).get("nodeAffinity", {})
    terms = aff.get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])
    return [(e["key"], e["operator"], tuple(e.get("values", []))) for t in terms for e in t["matchExpressions"]]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def check_canary(docs):
    ds = of_kind(docs, "DaemonSet")
    main, enforce = ds["mxsentry"], ds["mxsentry-enforce"]
    key = ("mxsentry.io/mode", "NotIn", ("enforce",))
    if node_terms(main) != [key] or node_terms(enforce) != [("mxsentry.io/mode", "In", ("enforce",))]:
        fail(f"canary: node affinity {node_terms(main)} / {node_terms(enforce)} does not split the nodes on mxsentry.io/mode=enforce")
    for a, b in [(main, enforce), (enforce, main)]:
        if selects(a["spec"]["selector"], b["spec"]["template"]["metadata"]["labels"]):
            fail(f"canary: DaemonSet {a['metadata']['name']}'s selector matches {b['metadata']['name']}'s pods")
    for svc in list(of_kind(docs, "Service").values()) + list(of_kind(docs, "NetworkPolicy").values()):
        sel = svc["spec"].get("selector") or svc["spec"]["podSelector"]["matchLabels"]
        for d in (main, enforce):
            if not selects({"matchLabels": sel}, d["spec"]["template"]["metadata"]["labels"]):
                fail(f"canary: {svc['kind']} {svc['metadata']['name']} does not select {d['metadata']['name']}'s pods")
    ok("canary: enforce DaemonSet on mxsentry.io/mode=enforce nodes, the other everywhere else, disjoint selectors")


def check_daemonsets(name, docs, legacy=False):
    for ds in of_kind(docs, "DaemonSet").values():
        where = f"{name}: DaemonSet {ds['metadata']['name']}"
        c = container(ds)
        if not re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", c["image"]):
            fail(f"{where}: image {c['image']} is not pinned by digest")
        if c.get("imagePullPolicy") != "IfNotPresent":
            fail(f"{where}: imagePullPolicy {c.get('imagePullPolicy')} (a digest never changes: IfNotPresent)")
        env = {e["name"]: e for e in c.get("env", [])}
        ref = env.get("MXSENTRY_NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if ref != "spec.nodeName":
            fail(f"{where}: MXSENTRY_NODE_NAME is not the downward API's spec.nodeName")
        sc = c["securityContext"]
        if sc.get("seLinuxOptions", {}).get("type") != "spc_t":
            fail(f"{where}: no SELinux type spc_t")
        notes = ds["spec"]["template"]["metadata"].get("annotations", {})
        note = notes.get(f"container.apparmor.security.beta.kubernetes.io/{c['name']}")
        field = sc.get("appArmorProfile", {}).get("type")
        if (legacy and (note, field) != ("unconfined", None)) or (not legacy and (note, field) != (None, "Unconfined")):
            fail(f"{where}: AppArmor annotation {note!r}, field {field!r}")
        if sc.get("privileged") or ds["spec"]["template"]["spec"].get("hostNetwork"):
            fail(f"{where}: privileged or host network")
    ok(f"{name}: every DaemonSet pinned by digest, node name from the downward API, AppArmor {'annotation' if legacy else 'field'} and SELinux spc_t")


def check_networkpolicy(name, docs):
    settings = yaml.safe_load((K8S / "base/settings.yaml").read_text())["data"]
    want = [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings["monitoring_namespace"]}}}],
             "ports": [{"port": 9464, "protocol": "TCP"}]}]
    got = of_kind(docs, "NetworkPolicy")["mxsentry"]["spec"]["ingress"]
    if got != want:
        fail(f"{name}: NetworkPolicy ingress {got}, want only the metrics port from namespace {settings['monitoring_namespace']}")
    else:
        ok(f"{name}: NetworkPolicy admits port 9464 from namespace {settings['monitoring_namespace']!r} only")


def anchors(markdown):
    """GitHub's anchors for a Markdown file's headings."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#+\s+(.*)", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(a)
    return out


def check_rules(docs):
    plain = yaml.safe_load((ROOT / "deploy/prometheus/mxsentry-rules.yml").read_text())
    crd = next(d for d in docs if d["kind"] == "PrometheusRule")
    if plain["groups"] != crd["spec"]["groups"]:
        fail("the rendered PrometheusRule differs from deploy/prometheus/mxsentry-rules.yml")
    else:
        ok("PrometheusRule (rendered) matches deploy/prometheus/mxsentry-rules.yml")
    base = yaml.safe_load((K8S / "base/settings.yaml").read_text())["data"]["runbook_base"]
    have = anchors((ROOT / "docs/runbook.md").read_text())
    n = 0
    for group in crd["spec"]["groups"]:
        for rule in group["rules"]:
            n += 1
            url = rule["annotations"].get("runbook_url", "")
            want = f"{base}#{rule['alert'].lower()}"
            if url != want or not base.startswith("https://"):
                fail(f"{rule['alert']}: runbook_url {url!r}, want {want!r}")
            if rule["alert"].lower() not in have:
                fail(f"{rule['alert']}: no section in docs/runbook.md")
    ok(f"{n} alerts: absolute runbook_url below {base}, each with its docs/runbook.md section")


def check_dashboard(path):
    d = json.loads(path.read_text())
    if d.get("schemaVersion", 0) < 36:
        fail(f"{path.name}: schemaVersion {d.get('schemaVersion')} is older than Grafana 9")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        fail(f"{path.name}: no datasource variable")
    node = variables.get("node", {})
    if "(mxsentry_build_info, node)" not in node.get("definition", "") or node.get("hide", 0) != 0:
        fail(f"{path.name}: no visible node variable listing mxsentry_build_info's node label")
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
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit not in GRAFANA_UNITS and not CUSTOM_UNIT.match(unit or ""):
            fail(f"{where}: unit {unit!r} is not a Grafana unit")
        for t in p.get("targets", []):
            if not t.get("expr"):
                fail(f"{where}: target without a query")
            if t.get("datasource", {}).get("uid") not in (None, "${datasource}"):
                fail(f"{where}: target datasource is not the variable")
    if len(ids) != len(set(ids)) or None in ids:
        fail(f"{path.name}: panel ids not unique: {ids}")
    ok(f"{path.name}: schemaVersion {d['schemaVersion']}, {len(panels)} panels with Grafana units, unique ids, datasource and node variables")


def composition(tmp):
    """A kustomization of the canary overlay with every optional component."""
    here = Path(tmp) / "all-components"
    here.mkdir()
    (here / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [relpath(K8S / "overlays/canary", here)],
        "components": [relpath(K8S / "components" / c, here) for c in COMPONENTS],
    }))
    return here


def relpath(target, start):
    # kustomize takes no absolute paths.
    return os.path.relpath(target.resolve(), start.resolve())


def main():
    with tempfile.TemporaryDirectory() as tmp:
        rendered = {}
        for name in MODES:
            docs, path = render(name, K8S / "overlays" / name, tmp)
            if docs is None:
                continue
            rendered[name] = docs
            validate(name, path, docs, MODERN)
            checkov(name, path)
            check_modes(name, docs)
            check_daemonsets(name, docs)
            check_networkpolicy(name, docs)
        if "canary" in rendered:
            check_canary(rendered["canary"])
        name = "canary + " + ", ".join(COMPONENTS)
        docs, path = render(name, composition(tmp), tmp)
        if docs is not None:
            validate(name, path, docs, LEGACY + MODERN)
            checkov(name, path)
            check_modes(name, docs)
            check_daemonsets(name, docs, legacy=True)
            quotas = of_kind(docs, "ResourceQuota")
            if not any(q["metadata"].get("namespace") == "mxsentry" for q in quotas.values()):
                fail(f"{name}: no ResourceQuota for system-node-critical in the agent's namespace")
            for kind in ("ServiceMonitor", "PrometheusRule"):
                if "release" not in next(iter(of_kind(docs, kind).values()))["metadata"]["labels"]:
                    fail(f"{name}: {kind} lacks the Prometheus Operator's selector label")
        if "monitor" in rendered:
            check_rules(rendered["monitor"])
    for dash in sorted((ROOT / "dashboards").glob("*.json")):
        check_dashboard(dash)
    if failures:
        print(f"{len(failures)} deployment check(s) failed")
        sys.exit(1)


main()
