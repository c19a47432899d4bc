"""Lookalike corpus for mxsentry's recall report (dev-time fixture, run by `cargo xtask quality`).

Prints one JSON object per line: {"domain", "class", "target", "source"}.
  source "dnstwist": every permutation dnstwist's Fuzzer generates for each protected
                     domain, labelled with dnstwist's own fuzzer class;
  source "mxsentry": the suffix cases dnstwist does not generate by default (typos inside
                     the public suffix, swaps, appended suffixes, dropped dots, the real
                     name as someone else's subdomain).
Usage: corpus.py WORDS_FILE DOMAIN...
"""

import json
import re
import sys

import dnstwist
from tld import get_tld

VALID = re.compile(r"(?=^.{4,253}$)(^((?!-)[a-z0-9-]{1,63}(?<!-)\.)+[a-z0-9-]{2,63}$)")
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789."
SWAPS = {"mil": ["ml"], "com": ["net", "co"], "co.uk": ["com", "uk"], "gov.uk": ["gov"], "gov": ["gv", "go"]}


def emit(domain, cls, target, source):
    print(json.dumps({"domain": domain, "class": cls, "target": target, "source": source}))


def split(domain):
    suffix = get_tld(domain, fix_protocol=True, fail_silently=True) or domain.split(".", 1)[1]
    return domain[: -len(suffix) - 1], suffix


def edits(s):
    out = set()
    for i in range(len(s)):
        out.add(s[:i] + s[i + 1 :])
        for c in ALPHABET:
            out.add(s[:i] + c + s[i + 1 :])
    for i in range(len(s) + 1):
        for c in ALPHABET:
            out.add(s[:i] + c + s[i:])
    for i in range(len(s) - 1):
        out.add(s[:i] + s[i + 1] + s[i] + s[i + 2 :])
    out.discard(s)
    return out


def own_cases(domain):
    label, suffix = split(domain)
    for s in sorted(edits(suffix)):
        name = f"{label}.{s}"
        if VALID.match(name) and not name.endswith("." + suffix) and s.strip("."):
            emit(name, "suffix-typo", domain, "mxsentry")
    for s in SWAPS.get(suffix, []):
        emit(f"{label}.{s}", "suffix-swap", domain, "mxsentry")
    for s in ["com", "net", "ml", "co"]:
        emit(f"{domain}.{s}", "suffix-appended", domain, "mxsentry")
    glued = suffix.replace(".", "")
    for s in ["com", "net"]:
        emit(f"{label}{glued}.{s}", "dot-dropped", domain, "mxsentry")
        emit(f"{label}-{suffix.replace('.', '-')}.{s}", "dot-dropped", domain, "mxsentry")
    for host in ["attacker.com", "mail-relay.net", "evil.co.uk"]:
        emit(f"{domain}.{host}", "protected-as-subdomain", domain, "mxsentry")


def main():
    with open(sys.argv[1]) as f:
        words = [w.strip() for w in f if w.strip() and not w.startswith("#")]
    for domain in sys.argv[2:]:
        fuzz = dnstwist.Fuzzer(domain, dictionary=words)
        fuzz.generate()
        for p in sorted(fuzz.domains, key=lambda p: (p["fuzzer"], p["domain"])):
            if p["fuzzer"] != "*original" and p["domain"]:
                emit(p["domain"], p["fuzzer"], domain, "dnstwist")
        own_cases(domain)


if __name__ == "__main__":
    main()
