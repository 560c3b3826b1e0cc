"""The OpenFeature Python SDK with its OFREP provider against a running
rollgate: usage: openfeature_sdk.py BASE_URL TOKEN. Prints what the SDK
resolved, as JSON, for the Rust test to check."""

import json
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

base, token = sys.argv[1], sys.argv[2]
api.set_provider(OFREPProvider(base, headers_factory=lambda: {"X-API-Key": token}))
client = api.get_client()


def details(d):
    return {
        "value": d.value,
        "reason": str(d.reason.value if hasattr(d.reason, "value") else d.reason),
        "variant": d.variant,
        "error_code": d.error_code.value if d.error_code else None,
    }


out = {"boolean": {}}
for i in range(0, 200):
    key = f"user-{i}"
    d = client.get_boolean_details("new-scorer", False, EvaluationContext(targeting_key=key, attributes={"country": "FR"}))
    out["boolean"][key] = details(d)
out["missing"] = details(client.get_boolean_details("no-such-flag", False, EvaluationContext(targeting_key="u")))
out["killed"] = details(client.get_string_details("scorer-model", "fallback", EvaluationContext(targeting_key="u")))
print(json.dumps(out))
