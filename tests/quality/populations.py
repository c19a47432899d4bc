"""Real domain populations for mxsentry's quality report (dev-time fixture, run by
`cargo xtask quality` in its private venv, after it installs the pinned packages).

Prints one JSON object per line: {"population", "domain"}; the first line of each
population is {"population", "source"} saying where it comes from.
Usage: populations.py NPM_DIR

Sources (all installed by the quality step from a registry at a pinned version):
  pymispwarninglists (PyPI) ships the MISP warning lists: the Tranco top 1M, the Chrome
  UX Report top 1M origins, Hipo's world university domains and a list of bank websites;
  npm `top-sites`, `email-providers` and `free-email-domains`.
Government and military populations are the Tranco and CrUX names whose public suffix,
by the Public Suffix List shipped in the pinned `tld` package, is a government or military
one (`gov`, `mil`, or a country's `gov.XX`, `gob.XX`, `gouv.XX`, `govt.XX`, `gub.XX`,
`mil.XX`): the selection reads only the suffix's label, not mxsentry's registry table.
"""

import json
import os
import sys

import pymispwarninglists
from tld import get_tld

LISTS = os.path.join(os.path.dirname(pymispwarninglists.__file__), "data", "misp-warninglists", "lists")
GOV = {"gov", "gob", "gouv", "govt", "gub"}
MIL = {"mil"}


def misp(name):
    with open(os.path.join(LISTS, name, "list.json")) as f:
        d = json.load(f)
    return d["list"], d.get("version")


def split(host):
    """Registrable domain and public suffix of a host name (None when it has neither)."""
    host = host.strip().strip(".").lower()
    if host.startswith("http"):
        host = host.split("//", 1)[-1]
    host = host.split("/", 1)[0].split(":", 1)[0]
    res = get_tld(host, fix_protocol=True, as_object=True, fail_silently=True)
    if not res or not res.fld:
        return None, None
    return res.fld, res.tld


def emit(population, source, names):
    print(json.dumps({"population": population, "source": source}))
    for d in sorted(set(names)):
        print(json.dumps({"population": population, "domain": d}))


def main():
    npm = sys.argv[1]
    tranco, tv = misp("tranco")
    crux, cv = misp("google-chrome-crux-1million")
    web = set()
    gov, mil = set(), set()
    for host in tranco + crux:
        fld, suffix = split(host)
        if not fld:
            continue
        web.add(fld)
        first = suffix.split(".")[0]
        if first in GOV:
            gov.add(fld)
        if first in MIL:
            mil.add(fld)
    unis, uv = misp("university_domains")
    banks, bv = misp("bank-website")
    emit("military", f"Tranco {tv} + CrUX {cv} names under a `mil` / `mil.XX` suffix", mil)
    emit("government", f"Tranco {tv} + CrUX {cv} names under a `gov`, `gov.XX`, `gob.XX`, `gouv.XX`, `govt.XX`, `gub.XX` suffix", gov)
    emit("academic", f"Hipo world universities and domains (MISP `university_domains` {uv})", unis)
    emit("banks", f"MISP `bank-website` list, version {bv}", [b.lstrip(".") for b in banks])
    with open(os.path.join(npm, "top-sites", "package", "top-sites.json")) as f:
        top = [s["rootDomain"] for s in json.load(f)]
    emit("web", f"Tranco top 1M {tv}, CrUX top 1M {cv} (registrable domains) and npm `top-sites`", list(web) + top)
    def npm_list(path):
        with open(os.path.join(npm, path)) as f:
            return [d for d in (split(x)[0] for x in json.load(f)) if d]

    emit("mail-providers", "npm `email-providers` (`common.json`: the providers people use)", npm_list("email-providers/package/common.json"))
    # These lists record every domain people signed up with, typo domains included
    # (gamil.com, hotmial.com): many of their typosquats are true ones.
    mail = npm_list("email-providers/package/all.json") + npm_list("free-email-domains/package/domains.json")
    emit("mail-domains", "npm `email-providers` (`all.json`) and `free-email-domains`: every domain seen in sign-ups, typo domains included", mail)


if __name__ == "__main__":
    main()
