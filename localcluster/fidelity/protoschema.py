"""Writes localcluster/data/protobuf-schema.json: the protobuf field table of the kinds the
local cluster serves, from Kubernetes' own sources.

Each message of the packages below becomes `{"Full.Message.Name": [[number, jsonName, type,
label, pointer, omitempty], ...]}`: `number`/`type`/`label` (`o` optional, `r` repeated, `m`
map, with `type` `map<K,V>`) come from the package's `generated.proto`, `jsonName`, `pointer`
(the Go field is `*T`) and `omitempty` from the Go struct tags beside it, so a protobuf body
decodes to the JSON that the API server's own Go round trip would give.

    python3 localcluster/fidelity/protoschema.py [GOMODCACHE]

GOMODCACHE defaults to `go env GOMODCACHE`; the versions are those realcluster/go.mod pins.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "localcluster" / "data" / "protobuf-schema.json"

# (module, directory in it) of every package whose messages the served kinds use.
PACKAGES = [
    ("k8s.io/api", "core/v1"),
    ("k8s.io/api", "batch/v1"),
    ("k8s.io/api", "authorization/v1"),
    ("k8s.io/api", "authentication/v1"),
    ("k8s.io/api", "scheduling/v1alpha3"),
    ("k8s.io/apimachinery", "pkg/apis/meta/v1"),
    ("k8s.io/apimachinery", "pkg/runtime"),
    ("k8s.io/apimachinery", "pkg/runtime/schema"),
    ("k8s.io/apimachinery", "pkg/util/intstr"),
    ("k8s.io/apimachinery", "pkg/api/resource"),
]

FIELD = re.compile(
    r"^\s*(optional|repeated)?\s*(map<[^>]+>|[.\w]+)\s+(\w+)\s*=\s*(\d+)\s*(\[.*\])?\s*;"
)
GO_FIELD = re.compile(r"^\s*(\w+)\s+(\S+)\s+`([^`]*)`")
TAG = re.compile(r'(\w+):"([^"]*)"')


def module_version(module: str) -> str:
    """The version realcluster/go.mod pins for a module (`v0.37.2`)."""
    gomod = (ROOT / "realcluster" / "go.mod").read_text()
    m = re.search(rf"^\s*{re.escape(module)} (v[\w.\-]+)", gomod, re.M)
    if not m:
        raise SystemExit(f"{module} is not in realcluster/go.mod")
    return m.group(1)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def proto_messages(path: Path) -> dict[str, list[list]]:
    """`{full name: [[number, protoName, type, label]]}` of one generated.proto."""
    text = strip_comments(path.read_text())
    package = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
    out: dict[str, list[list]] = {}
    stack: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^\s*message\s+(\w+)\s*\{", line)
        if m:
            stack.append(m.group(1))
            out[".".join([package, *stack])] = []
            continue
        if re.match(r"^\s*\}", line) and stack:
            stack.pop()
            continue
        f = FIELD.match(line)
        if f and stack:
            label, typ, name, num = f.group(1), f.group(2), f.group(3), int(f.group(4))
            kind = "m" if typ.startswith("map<") else ("r" if label == "repeated" else "o")
            if kind != "m":
                typ = qualify(typ, package)
            out[".".join([package, *stack])].append([num, name, typ, kind])
    return out


SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float"}


def qualify(typ: str, package: str) -> str:
    """A scalar as is; a message by its full name (without the leading dot)."""
    if typ in SCALARS:
        return typ
    return typ[1:] if typ.startswith(".") else f"{package}.{typ}"


def resolve_map(typ: str, package: str) -> str:
    key, value = typ[4:-1].split(",")
    return f"map<{key.strip()},{qualify(value.strip(), package)}>"


def go_tags(directory: Path) -> dict[tuple[str, int], tuple[str, bool, bool]]:
    """`{(struct, protobuf number): (json name, pointer, omitempty)}` from a package's Go files."""
    tags: dict[tuple[str, int], tuple[str, bool, bool]] = {}
    for go in sorted(directory.glob("*.go")):
        if go.name.endswith("_test.go") or go.name.startswith(("zz_", "generated")):
            continue
        struct = None
        for line in go.read_text().splitlines():
            m = re.match(r"^type\s+(\w+)\s+struct\s*\{", line)
            if m:
                struct = m.group(1)
                continue
            if line.startswith("}"):
                struct = None
                continue
            g = GO_FIELD.match(line)
            if not (struct and g):
                continue
            tag = dict(TAG.findall(g.group(3)))
            if "protobuf" not in tag:
                continue
            parts = tag["protobuf"].split(",")
            number = int(parts[1])
            json_tag = tag.get("json", "").split(",")
            name = json_tag[0] or next((p[5:] for p in parts if p.startswith("name=")), g.group(1))
            omit = "omitempty" in json_tag[1:] or "omitzero" in json_tag[1:]
            tags[(struct, number)] = (name, g.group(2).startswith("*"), omit)
    return tags


def main() -> None:
    cache = Path(
        sys.argv[1]
        if len(sys.argv) > 1
        else subprocess.run(
            ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    schema: dict[str, list[list]] = {}
    for module, sub in PACKAGES:
        directory = cache / f"{module}@{module_version(module)}" / sub
        messages = proto_messages(directory / "generated.proto")
        package = next(iter(messages)).rsplit(".", 1)[0] if messages else ""
        tags = go_tags(directory)
        for full, fields in messages.items():
            struct = full.rsplit(".", 1)[1]
            rows = []
            for num, name, typ, kind in fields:
                if kind == "m":
                    typ = resolve_map(typ, package)
                json_name, pointer, omit = tags.get((struct, num), (name, False, True))
                rows.append([num, json_name, typ, kind, pointer, omit])
            schema[full] = rows
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(schema)} messages, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
