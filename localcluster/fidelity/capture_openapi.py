"""Captures the real API server's OpenAPI documents into localcluster/data/openapi/ (gzip).

    scripts/real-cluster up /tmp/rc      # prints /tmp/rc/kubeconfig
    python3 localcluster/fidelity/capture_openapi.py /tmp/rc/kubeconfig

Writes, byte for byte as the server sends them:
- `v2.json.gz` and `v2.pb.gz`: `/openapi/v2` as JSON and as gnostic protobuf (kubectl 1.20's
  explain and client-side validation ask for the protobuf);
- `v3-<path>.json.gz` for each `/openapi/v3/<path>` the local cluster serves (the core and
  batch group versions and the discovery documents beside them); the index (`/openapi/v3`)
  is not stored: the local cluster builds it from these, with their SHA-512 hashes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

from kubernetes import config

OUT = Path(__file__).resolve().parents[1] / "data" / "openapi"
V3_PATHS = ["api", "api/v1", "apis", "apis/batch", "apis/batch/v1", "version"]
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def fetch(client, path: str, accept: str) -> bytes:
    """GET `path` with this Accept; the body, or exit with the status."""
    r = client.call_api("GET", client.configuration.host + path, header_params={"Accept": accept})
    r.read()
    if r.status != 200:
        raise SystemExit(f"GET {path}: HTTP {r.status}")
    return r.data


def write(name: str, data: bytes) -> int:
    path = OUT / name
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return path.stat().st_size


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    client = config.new_client_from_config(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    index = json.loads(fetch(client, "/openapi/v3", "application/json"))["paths"]
    total = 0
    for path in V3_PATHS:
        data = fetch(client, f"/openapi/v3/{path}", "application/json")
        want = index[path]["serverRelativeURL"].split("hash=")[1]
        if hashlib.sha512(data).hexdigest().upper() != want:
            raise SystemExit(f"/openapi/v3/{path}: body does not match the index's hash")
        total += write(f"v3-{path.replace('/', '-')}.json.gz", data)
    total += write("v2.json.gz", fetch(client, "/openapi/v2", "application/json"))
    total += write("v2.pb.gz", fetch(client, "/openapi/v2", V2_PROTOBUF))
    print(f"{OUT}: {total} bytes compressed")


if __name__ == "__main__":
    main()
