"""The OpenAI Python client (PyPI `openai`) as an application uses it: one
streamed and one whole chat completion against the base URL given, printed
as JSON for the Rust test to compare (through the gateway and straight to
the model)."""

import json
import sys

from openai import OpenAI

base_url = sys.argv[1]
client = OpenAI(base_url=base_url, api_key="not-checked", max_retries=0, timeout=30)
messages = [{"role": "user", "content": "Is order 1234 of 56.10 EUR fraud?"}]

pieces, finish, usage, chunks = [], None, None, 0
stream = client.chat.completions.create(
    model="fraud-chat", messages=messages, stream=True, stream_options={"include_usage": True}
)
for chunk in stream:
    chunks += 1
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
    if chunk.usage:
        usage = chunk.usage.completion_tokens

whole = client.chat.completions.create(model="fraud-chat", messages=messages)
print(
    json.dumps(
        {
            "streamed": "".join(pieces),
            "chunks": chunks,
            "finish_reason": finish,
            "completion_tokens": usage,
            "whole": whole.choices[0].message.content,
            "whole_finish_reason": whole.choices[0].finish_reason,
        }
    )
)
