"""Differential conformance: send corpus.yaml to a fresh local cluster and to a real API server.

    python localcluster/fidelity/run.py --real-kubeconfig K [--out localcluster/FIDELITY.md]

Both sides get the same requests in the same order, each in a namespace of its own, with a time
limit on every request. Answers are compared (status code, media type, JSON body) after the
normalisation rules of ``RULES``; differences are marked from ``known.yaml``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import socket
import ssl
import sys
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus.yaml"
KNOWN = HERE / "known.yaml"
REPORT = HERE.parent / "FIDELITY.md"
REQUEST_TIMEOUT = 10.0
MISSING = object()


# ---------------------------------------------------------------------------------------------
# Talking to an API server


class Target:
    """One API server, from its kubeconfig (bearer token or client certificate)."""

    def __init__(self, label: str, kubeconfig: str):
        self.label = label
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        url = urllib.parse.urlsplit(cluster["server"])
        if url.hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"{label}: only 127.0.0.1 servers, not {url.hostname}")
        self.host, self.port = url.hostname, url.port or 443
        self.ssl = ssl.create_default_context()
        self.ssl.check_hostname = False  # the real server's leaf names its service IP, not us
        if "certificate-authority-data" in cluster:
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
            self.ssl.load_verify_locations(cadata=ca)
        elif "certificate-authority" in cluster:
            self.ssl.load_verify_locations(cafile=cluster["certificate-authority"])
        self.kubeconfig = kubeconfig
        self.headers: dict[str, str] = {}
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        if "client-certificate-data" in user:
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp, "c.pem"), Path(tmp, "k.pem")
                cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
                key.write_bytes(base64.b64decode(user["client-key-data"]))
                self.ssl.load_cert_chain(cert, key)
        elif "client-certificate" in user:
            self.ssl.load_cert_chain(user["client-certificate"], user["client-key"])

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        watch: dict[str, Any] | None = None,
    ) -> Answer:
        hdrs = {"Accept": "application/json", **self.headers, **(headers or {})}
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        limit = float((watch or {}).get("timeout", REQUEST_TIMEOUT))
        deadline = time.monotonic() + limit
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=limit)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            ctype = resp.getheader("Content-Type", "")
            seen = {k.lower(): resp.msg.get_all(k) for k in resp.headers.keys()}
            if watch and resp.status == 200:
                events: list[Any] = []
                while len(events) < int(watch.get("events", 1)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    conn.sock.settimeout(left)
                    try:
                        line = resp.readline()
                    except (socket.timeout, TimeoutError):
                        break
                    if not line:
                        break
                    if line.strip():
                        events.append(json.loads(line))
                return Answer(resp.status, ctype, events, seen)
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            return Answer(0, "", f"request failed: {type(exc).__name__}: {exc}")
        finally:
            conn.close()
        try:
            data: Any = json.loads(raw) if raw else ""
        except ValueError:
            data = raw.decode(errors="replace")
        return Answer(resp.status, ctype, data, seen)


@dataclass
class Answer:
    status: int
    content_type: str
    body: Any
    headers: dict[str, list[str]] = field(default_factory=dict)

    def media_type(self) -> str:
        return self.content_type.split(";")[0].strip()


def compact_etcd(target: Target) -> str:
    """Compact the etcd of a ``scripts/real-cluster`` DIR (its plan.json names etcd's port)
    to the current revision, as kube-apiserver itself does every 5 minutes. Returns a note."""
    plan = Path(target.kubeconfig).parent / "plan.json"
    if not plan.exists():
        return "no plan.json beside the kubeconfig: etcd not compacted"
    argv = next(
        c["argv"] for c in json.loads(plan.read_text())["components"] if c["name"] == "etcd"
    )
    port = int(next(a for a in argv if a.startswith("--client-port=")).split("=")[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("POST", "/v3/kv/range", json.dumps({"key": "Lw=="}))
        rev = json.loads(conn.getresponse().read())["header"]["revision"]
        conn.request("POST", "/v3/kv/compaction", json.dumps({"revision": rev, "physical": True}))
        conn.getresponse().read()
    finally:
        conn.close()
    return "etcd compacted to its current revision"


# ---------------------------------------------------------------------------------------------
# Normalisation: each rule once, by name

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
GENERATED = re.compile(r"(-gen-|^kube-api-access-)[bcdfghjklmnpqrstvwxz2456789]{5}\b")
EVENT_NAME = re.compile(r"^(.+)\.[0-9a-f]{16}$")
TOO_OLD = re.compile(r"too old resource version: \d+ \(\d+\)")
AGE = re.compile(r"^\d+(s|m|h|d|y)(\d+(s|m|h))?$")
VERSION_BUILD = (
    "gitCommit",
    "buildDate",
    "goVersion",
    "platform",
    "compiler",
    "emulationMajor",
    "emulationMinor",
    "minCompatibilityMajor",
    "minCompatibilityMinor",
)

RULES: list[tuple[str, str]] = [
    (
        "uid",
        "every UUID string (metadata.uid, ownerReferences, controller-uid labels and "
        "selectors, Status details.uid) → `<uid>`",
    ),
    (
        "timestamp",
        "every RFC 3339 time string (creationTimestamp, deletionTimestamp, "
        "conditions, event times) → `<time>`",
    ),
    (
        "resourceVersion",
        "every `resourceVersion` value → `<rv>`, and the numbers in "
        "`too old resource version: N (M)`",
    ),
    (
        "generatedName",
        "the 5 random characters after a `generateName` prefix (the corpus's "
        "`-gen-`, the ServiceAccount admission's `kube-api-access-`) → `<gen>`",
    ),
    ("containerID", "`containerID` values (runtime-specific) → `<container-id>`"),
    ("eventName", "recorder-made Event names `<object>.<16 hex digits>` → `<object>.<hex>`"),
    (
        "managedFields",
        "`metadata.managedFields` dropped (server-side apply bookkeeping), except in the "
        "entries marked `managed_fields` (the `ssa-*` entries), which compare them",
    ),
    ("selfLink", "`metadata.selfLink` dropped"),
    ("serverAddress", "`serverAddressByClientCIDRs` dropped (the servers' own addresses)"),
    ("nodeName", "`spec.nodeName` → `<node>`; `status.hostIP(s)`, `status.podIP(s)` → `<ip>`"),
    (
        "versionBuild",
        "`/version`: "
        + ", ".join(f"`{k}`" for k in VERSION_BUILD[:4])
        + " and the emulation/compatibility fields dropped (build facts of each binary)",
    ),
    ("tableAge", "Table cells that are an age (`5s`, `2m3s`) → `<age>`"),
    (
        "conflictCauses",
        "the `details.causes` of an apply conflict (`FieldManagerConflict`) sorted by field and "
        "message: kube-apiserver lists them in Go's map order of the managers, which changes "
        "from run to run (its message sorts them)",
    ),
    ("runName", "the run's unique prefix → `<run>` (the same on both sides; for stable keys)"),
]


def normalise(value: Any, run: str, path: str = "", managed: bool = False) -> Any:
    """The body as compared; ``managed`` keeps ``managedFields`` (the corpus's server-side
    apply entries compare them, their times normalised like any other)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            p = f"{path}.{k}" if path else k
            if k == "managedFields" and managed:
                out[k] = normalise(v, run, p, managed)
                continue
            if k in ("managedFields", "selfLink", "serverAddressByClientCIDRs"):
                continue
            if path == "" and k in VERSION_BUILD:
                continue
            if k == "resourceVersion" and isinstance(v, str):
                out[k] = "<rv>"
            elif k == "containerID" and isinstance(v, str):
                out[k] = "<container-id>"
            elif k == "nodeName" and isinstance(v, str):
                out[k] = "<node>"
            elif k in ("hostIP", "podIP") and isinstance(v, str):
                out[k] = "<ip>"
            elif k in ("hostIPs", "podIPs") and isinstance(v, list):
                out[k] = [{"ip": "<ip>"} for _ in v]
            else:
                out[k] = normalise(v, run, p, managed)
        causes = out.get("causes")
        if isinstance(causes, list) and all(
            isinstance(c, dict) and c.get("reason") == "FieldManagerConflict" for c in causes
        ):
            out["causes"] = sorted(causes, key=lambda c: (c.get("field"), c.get("message")))
        if out.get("kind") == "Table" and isinstance(out.get("rows"), list):
            for row in out["rows"]:
                if isinstance(row, dict) and isinstance(row.get("cells"), list):
                    row["cells"] = [
                        "<age>" if isinstance(c, str) and AGE.match(c) else c for c in row["cells"]
                    ]
        return out
    if isinstance(value, list):
        return [normalise(v, run, f"{path}[{i}]", managed) for i, v in enumerate(value)]
    if isinstance(value, str):
        value = UUID.sub("<uid>", value)
        value = TIME.sub("<time>", value)
        value = TOO_OLD.sub("too old resource version: <rv> (<rv>)", value)
        value = GENERATED.sub(r"\1<gen>", value)
        value = EVENT_NAME.sub(r"\1.<hex>", value)
        return value.replace(run, "<run>")
    return value


# ---------------------------------------------------------------------------------------------
# Comparison


def list_key(items: list[Any]) -> str | None:
    """How to align a list: by name, metadata.name or type, when every element has a unique one."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in ("name", "metadata.name", "type"):
        vals = [get(i, key) for i in items]
        if all(isinstance(v, str) for v in vals) and len(set(vals)) == len(vals):
            return key
    return None


def get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return MISSING
        obj = obj[part]
    return obj


def diff(real: Any, local: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if (
        isinstance(real, dict)
        and isinstance(local, dict)
        and real.get("kind") != local.get("kind")
        and "kind" in real
        and "kind" in local
    ):  # a Status against an object (or two kinds): one difference, not one per field
        out.append((path or "(body)", real, local))
        return
    if isinstance(real, dict) and isinstance(local, dict):
        for k in list(real) + [k for k in local if k not in real]:
            diff(real.get(k, MISSING), local.get(k, MISSING), f"{path}.{k}" if path else k, out)
        return
    if isinstance(real, list) and isinstance(local, list):
        if all(not isinstance(v, (dict, list)) for v in real + local):
            if real != local:  # a list of scalars (verbs, finalizers, cells) is one value
                out.append((path, real, local))
            return
        key = list_key(real) or list_key(local)
        if key is None or (real and list_key(real) != key) or (local and list_key(local) != key):
            if len(real) != len(local):
                out.append((f"{path}.length", len(real), len(local)))
            for i in range(min(len(real), len(local))):
                diff(real[i], local[i], f"{path}[{i}]", out)
            return
        r = {get(i, key): i for i in real}
        loc = {get(i, key): i for i in local}
        only_real = [n for n in r if n not in loc]
        only_local = [n for n in loc if n not in r]
        if only_real:
            out.append((f"{path}[{key}=…] only on real", ", ".join(only_real), MISSING))
        if only_local:
            out.append((f"{path}[{key}=…] only on emulator", MISSING, ", ".join(only_local)))
        for n in r:
            if n in loc:
                diff(r[n], loc[n], f"{path}[{key}={n}]", out)
        if [n for n in r if n in loc] != [n for n in loc if n in r]:
            out.append((f"{path}.order", [n for n in r if n in loc], [n for n in loc if n in r]))
        return
    if real != local:
        out.append((path, real, local))


# ---------------------------------------------------------------------------------------------
# Running the corpus


def fill(value: Any, subs: dict[str, str]) -> Any:
    if isinstance(value, str):
        for k, v in subs.items():
            value = value.replace("{" + k + "}", v)
        return value
    if isinstance(value, dict):
        return {fill(k, subs): fill(v, subs) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, subs) for v in value]
    return value


@dataclass
class Outcome:
    entry: dict[str, Any]
    real: Answer
    local: Answer
    diffs: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.diffs

    @property
    def ran(self) -> bool:
        return self.real.status != 0 and self.local.status != 0


def run_side(
    target: Target, corpus: list[dict[str, Any]], run: str, notes: list[str]
) -> list[Answer]:
    ns = f"{run}-ns"
    subs = {"ns": ns, "ns2": f"{run}-ns2", "name": run}
    saved: dict[str, str] = {}
    ns_body = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    setup = target.send("POST", "/api/v1/namespaces", ns_body.encode())
    if setup.status != 201:
        raise SystemExit(f"{target.label}: cannot create namespace {ns}: {setup.body}")
    answers = []
    try:
        for entry in corpus:
            if entry.get("prepare") == "compact" and target.label == "real":
                notes.append(f"`{entry['id']}`: {compact_etcd(target)}")
            if entry.get("sleep"):
                time.sleep(float(entry["sleep"]))
            cur = {**subs, **{f"saved.{k}": v for k, v in saved.items()}}
            body = entry.get("body")
            if body is not None:
                body = fill(body, cur)
                body = (body if isinstance(body, str) else json.dumps(body)).encode()
            if entry.get("body_base64"):
                body = base64.b64decode(entry["body_base64"])
            answer = target.send(
                entry["method"],
                fill(entry["path"], cur),
                body,
                fill(entry.get("headers") or {}, cur),
                entry.get("watch"),
            )
            for key, dotted in (entry.get("save") or {}).items():
                val = get(answer.body, dotted)
                saved[key] = str(val) if val is not MISSING else "0"
            answers.append(answer)
    finally:
        for n in (ns, subs["ns2"]):
            target.send("DELETE", f"/api/v1/namespaces/{n}")
    return answers


def compare(entry: dict[str, Any], real: Answer, local: Answer, run: str) -> Outcome:
    out = Outcome(entry, real, local)
    if real.status != local.status:
        out.diffs.append(("(status code)", real.status, local.status))
    if real.media_type() != local.media_type():
        out.diffs.append(("(content type)", real.media_type(), local.media_type()))
    for name in entry.get("compare_headers") or []:
        r, loc = (a.headers.get(name.lower(), []) for a in (real, local))
        if r != loc:
            out.diffs.append((f"(header {name})", r, loc))
    managed = bool(entry.get("managed_fields"))
    diff(
        normalise(real.body, run, managed=managed),
        normalise(local.body, run, managed=managed),
        "",
        out.diffs,
    )
    return out


def run_corpus(real_kubeconfig: str, notes: list[str] | None = None) -> list[Outcome]:
    """Run the corpus on both sides; ``notes`` collects what the preparations did."""
    notes = [] if notes is None else notes
    from kjenv.testing import LocalCluster

    corpus = yaml.safe_load(CORPUS.read_text())
    ids = [e["id"] for e in corpus]
    assert len(ids) == len(set(ids)), "duplicate corpus ids"
    run = f"fid-{uuid.uuid4().hex[:6]}"
    real = Target("real", real_kubeconfig)
    real_answers = run_side(real, corpus, run, notes)
    with LocalCluster(concurrency=4) as cluster:
        local_answers = run_side(Target("local", cluster.kubeconfig), corpus, run, notes)
    return [compare(e, r, loc, run) for e, r, loc in zip(corpus, real_answers, local_answers)]


# ---------------------------------------------------------------------------------------------
# Marks and the report


def load_known() -> list[dict[str, str]]:
    return yaml.safe_load(KNOWN.read_text()) or [] if KNOWN.exists() else []


def glob(pattern: str, text: str) -> bool:
    """``*`` matches anything; every other character (``[``, ``.``, ``=``) is literal."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), text) is not None


def mark(entry_id: str, path: str, known: list[dict[str, str]]) -> dict[str, str]:
    for k in known:
        if glob(k["entry"], entry_id) and glob(k["path"], path):
            return k
    return {"mark": "to fix", "note": "(unclassified: new difference)"}


def show(value: Any, width: int = 90) -> str:
    if value is MISSING:
        return "*(absent)*"
    text = json.dumps(value, sort_keys=True)
    text = text.replace("|", "\\|").replace("\n", " ")
    return "`" + (text if len(text) <= width else text[: width - 1] + "…") + "`"


def key_of(entry_id: str, path: str) -> str:
    return f"{entry_id} {path}"


KEY_LINE = re.compile(r"^<!-- key: (.+) -->$", re.M)
SHARE_LINE = re.compile(r"^\*\*(\d+) of (\d+) requests", re.M)


def listed_keys(report: str) -> set[str]:
    return set(KEY_LINE.findall(report))


def committed_share(report: str) -> tuple[int, int]:
    m = SHARE_LINE.search(report)
    assert m, "no headline figure in the report"
    return int(m.group(1)), int(m.group(2))


def render(outcomes: list[Outcome], seconds: float, command: str, notes: list[str]) -> str:
    known = load_known()
    total = len(outcomes)
    matched = sum(o.matches for o in outcomes)
    not_ran = [o for o in outcomes if not o.ran]
    counts: dict[str, int] = {}
    for o in outcomes:
        for path, _, _ in o.diffs:
            m = mark(o.entry["id"], path, known)["mark"]
            counts[m] = counts.get(m, 0) + 1
    lines = [
        "# Local cluster fidelity: differential conformance against kube-apiserver",
        "",
        "Generated by `" + command + "` (issue 12 item 4). The corpus "
        "(`localcluster/fidelity/corpus.yaml`) is sent, request by request, to a fresh local "
        "cluster and to the real control plane of `scripts/real-cluster` (kube-apiserver v1.37.2), "
        "each in a namespace of its own; status code, media type and JSON body are compared after "
        "the normalisation rules below. Marks come from `localcluster/fidelity/known.yaml`; "
        "`tests/test_fidelity.py` (real tier) fails if the share drops or a difference appears "
        "that this report does not list.",
        "",
        f"**{matched} of {total} requests identical after normalisation "
        f"({100 * matched / total:.1f}%).**",
        "",
        f"Differences: {sum(counts.values())} in {total - matched} requests — "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        + ". A difference the emulator no longer shows leaves this report, and its mark "
        "leaves `known.yaml`. "
        f"One run of both sides took {seconds:.0f} s.",
        "",
    ]
    only_kept = [
        o
        for o in outcomes
        if o.diffs
        and all(mark(o.entry["id"], p, known)["mark"] == "kept on purpose" for p, _, _ in o.diffs)
    ]
    lines += [
        f"Counting the {len(only_kept)} requests whose only differences are kept on purpose as "
        f"matching: {matched + len(only_kept)} of {total} "
        f"({100 * (matched + len(only_kept)) / total:.1f}%).",
        "",
    ]
    if not_ran:
        lines += [
            "Requests that did not get an answer on one side (counted as differences): "
            + ", ".join(f"`{o.entry['id']}`" for o in not_ran),
            "",
        ]
    else:
        lines += [
            "Every request of the corpus ran on both sides (no request failed or timed out).",
            "",
        ]
    lines += [f"Preparation: {n}." for n in notes] + ([""] if notes else [])
    lines += ["## Normalisation rules", "", "| rule | what |", "|---|---|"]
    lines += [f"| `{name}` | {what} |" for name, what in RULES]
    lines += [
        "",
        "In the corpus since issue 17: protobuf bodies (`pb-*`), `fieldValidation` (`fv-*`), "
        "OpenAPI v2 and v3 (`openapi-*`), access reviews (`ssar-*`, `ssr-*`), server-side "
        "apply (`ssa-*`: create, re-apply, shared values, conflicts, force, fields an applier "
        "stops naming, an update's manager, dry run, the option and body errors; their "
        "`managedFields` compared too), and kubectl "
        "1.33.1's own requests captured with `-v=9` (`kubectl-*`: get as Tables, get --watch, "
        "label, annotate, create, client-side apply, patch, describe's event list, wait, logs, "
        "run, delete with its propagation policies, top, auth can-i, and exec's answers before "
        "the upgrade). Not in it yet: exec's stream itself (a WebSocket upgrade: "
        "`tests/test_conformance_exec.py` covers it with kubectl 1.33 and the Python client), "
        "Jobs that run pods to completion (the controllers' timing differs: the conformance "
        "tests cover them).",
        "",
        "Not compared: response headers other than the media type (e.g. `Warning`, "
        "`Audit-Id`). Watch answers are the list of events read (bounded by a count and "
        "`timeoutSeconds`).",
        "",
        "## Watch resume and 410 Gone",
        "",
        "`secret-watch-resume` (a watch from a list's resourceVersion sees only the later "
        "create) and `secret-watch-deleted` (MODIFIED, DELETED from an RV) are compared like "
        "any request. For 410, `secret-watch-too-old` first compacts the real server's etcd to "
        "its current revision (`prepare: compact`, through etcd's HTTP gateway on 127.0.0.1), "
        "then watches from `resourceVersion=1`. On a fresh kube-apiserver that is no 410: "
        "its watch cache serves watches from memory, not from etcd, and an RV older than the "
        "cache's window gets the current state as ADDED events (as the local cluster does, "
        "whose history holds 50,000 changes) until the cache's ring buffer has evicted events "
        "(≥ 100 per resource, and it grows while they are younger than 75 s). On a server "
        "that has been up for some minutes with writes (seen after ~10 minutes and a dozen "
        "corpus runs) it is the 200 + one ERROR event `410 Expired` `too old resource "
        "version: 1 (N)`, then the end of the stream, which the emulator gives only past "
        "50,000 changes or through its `expire_watches()` fault hook. "
        "A list at an old RV gives a 410 sooner: `secret-list-too-old-exact` "
        "(`resourceVersion=1&resourceVersionMatch=Exact`, after that compaction) answers 410 "
        "`Expired` `The resourceVersion for the provided list is too old.` once kube-apiserver "
        "has noticed the compaction, and an empty list at RV 1 (from its cache snapshots) "
        "before; the local cluster answers the state at that RV from its history (the empty "
        "list of then), and the same 410 once the RV is older than its 50,000 changes "
        "(`secret-list-exact-before-the-second` checks an exact list at a recent RV). "
        "Both entries are `volatile` in the corpus: `tests/test_fidelity.py` "
        "counts them as matching and tolerates new differences there; the differences below "
        "show what the run of this report got.",
        "",
        "## Work list (to fix), by number of requests affected",
        "",
        "| requests | what the emulator should do |",
        "|---|---|",
    ]
    by_note: dict[str, set[str]] = {}
    kept: dict[str, set[str]] = {}
    for o in outcomes:
        for path, _, _ in o.diffs:
            m = mark(o.entry["id"], path, known)
            (by_note if m["mark"] == "to fix" else kept).setdefault(m["note"], set()).add(
                o.entry["id"]
            )
    for note, ids in sorted(by_note.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"| {len(ids)} | {note} |")
    if not by_note:
        lines.append("| 0 | nothing: every difference left is kept on purpose |")
    lines += ["", "## Kept on purpose", "", "| requests | reason |", "|---|---|"]
    for note, ids in sorted(kept.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"| {len(ids)} | {note} |")
    lines += [
        "",
        "## Differences, by request",
        "",
        "*real* is kube-apiserver's answer, *emulator* the local cluster's.",
        "",
    ]
    for o in outcomes:
        if o.matches:
            continue
        e = o.entry
        lines += [
            f"### `{e['id']}` — {e['method']} `{e['path']}`",
            "",
            f"real {o.real.status}, emulator {o.local.status}.",
            "",
            "| field | real | emulator | mark |",
            "|---|---|---|---|",
        ]
        keys = []
        for path, r, loc in o.diffs:
            m = mark(e["id"], path, known)
            note = m["mark"] if m["mark"] != "kept on purpose" else "**kept on purpose**"
            if m["mark"] == "to fix":
                note = "**to fix**"
            width = 400 if " only on " in path else 90  # a list of names: show it all
            lines.append(
                f"| `{path}` | {show(r, width)} | {show(loc, width)} | {note}: {m['note']} |"
            )
            keys.append(key_of(e["id"], path))
        lines.append("")
        lines += [f"<!-- key: {k} -->" for k in keys]
        lines.append("")
    lines += [
        "## Matching requests",
        "",
        ", ".join(f"`{o.entry['id']}`" for o in outcomes if o.matches) or "none",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real-kubeconfig", default=os.environ.get("KJENV_TEST_KUBECONFIG"))
    ap.add_argument("--out", help="write the report here (e.g. localcluster/FIDELITY.md)")
    ap.add_argument("--json", help="also dump raw answers here (for debugging)")
    args = ap.parse_args(argv)
    if not args.real_kubeconfig:
        ap.error("--real-kubeconfig (or KJENV_TEST_KUBECONFIG) is required")
    start = time.monotonic()
    notes: list[str] = []
    outcomes = run_corpus(args.real_kubeconfig, notes)
    seconds = time.monotonic() - start
    command = (
        "python localcluster/fidelity/run.py --real-kubeconfig K --out localcluster/FIDELITY.md"
    )
    text = render(outcomes, seconds, command, notes)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {
                        "id": o.entry["id"],
                        "real": [o.real.status, o.real.body],
                        "local": [o.local.status, o.local.body],
                    }
                    for o in outcomes
                ],
                indent=1,
            )
        )
    if args.out:
        Path(args.out).write_text(text)
    matched = sum(o.matches for o in outcomes)
    print(f"{matched}/{len(outcomes)} identical ({seconds:.0f} s)", file=sys.stderr)
    if not args.out:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
