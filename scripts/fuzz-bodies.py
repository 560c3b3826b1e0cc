#!/usr/bin/env python3
"""Hostile requests on every mutating operation of the OpenAPI document, beyond
what schemathesis generates: oversize ids and fields, deep nesting, wrong
content types, empty, null and array bodies. Every answer must be a 4xx
problem document (application/problem+json with its status), never a 5xx,
never an acceptance.

Usage: fuzz-bodies.py BASE_URL TOKEN ROLLOUT_ID
"""
import json
import sys
import urllib.error
import urllib.request

BASE, TOKEN, ROLLOUT = sys.argv[1], sys.argv[2], sys.argv[3]
BODY_LIMIT = 256 * 1024


# The error codes OpenFeature's remote evaluation protocol answers with.
OFREP_ERRORS = {"FLAG_NOT_FOUND", "PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"}


def send(method, path, body=None, content_type="application/json"):
    request = urllib.request.Request(BASE + path, data=body, method=method)
    request.add_header("Authorization", "Bearer " + TOKEN)
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type", ""), error.read()


def fill(path, value=None):
    """The path with every {param} set to `value`, or else {id} to the real rollout and the rest to "x"."""
    out, rest = "", path
    while "{" in rest:
        before, _, after = rest.partition("{")
        name, _, rest = after.partition("}")
        out += before + (value if value is not None else ROLLOUT if name == "id" else "x")
    return out + rest


def deep(depth):
    return ("[" * depth + "]" * depth).encode()


HOSTILE_BODIES = [
    ("no body", b"", "application/json"),
    ("null", b"null", "application/json"),
    ("an array", b"[]", "application/json"),
    ("an array of an object", b"[{}]", "application/json"),
    ("a string", b'"why"', "application/json"),
    ("a number", b"42", "application/json"),
    ("not JSON", b"{nope", "application/json"),
    ("nested 10,000 deep", deep(10_000), "application/json"),
    ("an object nested 10,000 deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "application/json"),
    ("over the size limit", b'{"reason":"' + b"x" * (BODY_LIMIT + 1) + b'"}', "application/json"),
    ("an oversize field", json.dumps({"reason": "x" * 20_000, "note": "x" * 20_000, "summary": "x" * 20_000,
                                      "name": "x" * 20_000, "gate": "x" * 20_000, "service": "x" * 20_000}).encode(),
     "application/json"),
    ("text/plain", b"{}", "text/plain"),
    ("a form", b"reason=x", "application/x-www-form-urlencoded"),
    ("no content type", b"{}", None),
]

doc = json.loads(urllib.request.urlopen(BASE + "/api/v1/openapi.json", timeout=30).read())
failures, checked = [], 0
for path, operations in doc["paths"].items():
    for method, operation in operations.items():
        if method not in ("post", "put", "patch", "delete"):
            continue
        cases = []
        if "requestBody" in operation:
            cases += [(fill(path), label, body, ctype) for label, body, ctype in HOSTILE_BODIES]
        if "{" in path:
            # An id far longer than any rollgate gives (hyper itself answers 414 past 64 KiB).
            cases.append((fill(path, "i" * 20_000), "a 20,000-character path id", b"{}", "application/json"))
        for url, label, body, ctype in cases:
            status, content_type, raw = send(method.upper(), url, body, ctype)
            checked += 1
            problem = None
            try:
                problem = json.loads(raw)
            except ValueError:
                pass
            if path.startswith("/ofrep/"):
                # OFREP answers in its own format: {key?, errorCode, errorDetails}, by the protocol.
                ok = (400 <= status < 500 and content_type.startswith("application/json")
                      and isinstance(problem, dict) and problem.get("errorCode") in OFREP_ERRORS
                      and len(raw) < 2_000)
            else:
                ok = (400 <= status < 500 and content_type.startswith("application/problem+json")
                      and isinstance(problem, dict) and problem.get("status") == status)
            if not ok:
                failures.append(f"{method.upper()} {path} with {label}: {status} {content_type} {raw[:120]!r}")

print(f"{checked} hostile requests on {len(doc['paths'])} paths")
if failures:
    print("not answered with a 4xx problem document (or, on /ofrep/, an OFREP error):", *failures, sep="\n  ")
    sys.exit(1)
print("every one answered with a 4xx problem document (or, on /ofrep/, an OFREP error)")
