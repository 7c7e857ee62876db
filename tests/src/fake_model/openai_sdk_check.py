"""Proves the official `openai` SDK parses the fake model's Responses API answers.

Usage: openai_sdk_check.py BASE_URL CERT_PEM KEY_FILE. Exits non-zero on the first mismatch.
"""
import json
import ssl
import sys

import openai

base_url, cert, key_file = sys.argv[1], sys.argv[2], sys.argv[3]
key = open(key_file).read().strip()
ctx = ssl.create_default_context(cafile=cert)


def client(api_key=key, max_retries=0):
    return openai.OpenAI(
        api_key=api_key,
        base_url=f"{base_url}/v1",
        max_retries=max_retries,
        http_client=openai.DefaultHttpxClient(verify=ctx),
    )


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


TOOLS = [
    {"type": "function", "name": n, "description": n, "parameters": {"type": "object"}, "strict": False}
    for n in ["bash", "read_file", "write_file", "edit_file", "ask"]
]
c = client()

# Non-streaming plain answer.
r = c.responses.create(model="gpt-test", input="[[scenario:answer]] hello")
check(r.object == "response" and r.status == "completed", "non-streaming response shape")
check(r.output_text.startswith("Answer to: hello"), f"non-streaming text: {r.output_text!r}")
check(r.usage.output_tokens > 0 and r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, "non-streaming usage")

# Streaming plain answer, through the SDK's event accumulator.
seen = []
with c.responses.stream(model="gpt-test", input="[[scenario:slow:8:5]] hi", instructions="Be brief.") as stream:
    for event in stream:
        seen.append(event.type)
    final = stream.get_final_response()
check(seen[0] == "response.created" and "response.output_text.delta" in seen and seen[-1] == "response.completed", f"stream event order {seen[:3]}…{seen[-2:]}")
check(final.output_text == "".join(f"w{i:03} " for i in range(8)), "streamed text reassembled")
check(final.instructions == "Be brief.", "instructions echoed")

# Streaming function call: argument deltas reassemble into the call.
with c.responses.stream(model="gpt-test", tools=TOOLS, input="[[scenario:tool_chain]] go") as stream:
    final = stream.get_final_response()
calls = [item for item in final.output if item.type == "function_call"]
check(final.output[0].type == "message", "narration before the function call")
check(len(calls) == 1 and calls[0].name == "write_file", "one function call")
check(json.loads(calls[0].arguments) == {"path": "chain.txt", "content": "alpha\n"}, f"arguments reassembled: {calls[0].arguments}")

# Feeding the function output back advances the chain.
r = c.responses.create(
    model="gpt-test", tools=TOOLS,
    input=[
        {"role": "user", "content": "[[scenario:tool_chain]] go"},
        *[item.model_dump(exclude_none=True) for item in final.output],
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "written"},
    ],
)
check(r.output[0].type == "function_call" and r.output[0].name == "read_file", "second step of the chain")

# Raw streaming events (no accumulator): numbered, usage only on the terminal event.
raw = list(c.responses.create(model="gpt-test", stream=True, input="[[scenario:huge_usage:5000]] x", tools=TOOLS))
check([e.sequence_number for e in raw] == list(range(len(raw))), "sequence numbers count up from 0")
check(raw[0].type == "response.created" and raw[0].response.usage is None, "no usage before the end")
check(raw[-1].type == "response.completed" and raw[-1].response.usage.input_tokens == 5000, "usage on response.completed")

# Errors become the SDK's typed exceptions (storms count per conversation, so these differ from
# the Anthropic check's).
try:
    client(api_key="sk-wrong").responses.create(model="m", input="x")
    check(False, "wrong key refused")
except openai.AuthenticationError as e:
    check(e.status_code == 401 and e.code == "invalid_api_key", "wrong key → AuthenticationError")
try:
    c.responses.create(model="m", input="[[scenario:storm:1:429]] openai a")
    check(False, "429 raised")
except openai.RateLimitError as e:
    check(e.response.headers.get("retry-after") == "1" and e.code == "rate_limit_exceeded", "429 → RateLimitError with retry-after")
try:
    c.responses.create(model="m", input="[[scenario:storm:1:529]] openai b")
    check(False, "503 raised")
except openai.InternalServerError as e:
    check(e.status_code == 503 and e.type == "server_error", "overload → 503 InternalServerError")
r = c.responses.create(model="m", input="[[scenario:storm:1:529]] openai b")
check(r.output_text.startswith("Answer to: openai b"), "after the storm the same conversation succeeds")
try:
    c.responses.create(model="m")
    check(False, "missing input refused")
except openai.BadRequestError as e:
    check(e.status_code == 400 and "input" in e.message, "missing input → BadRequestError")

# The SDK's own retry honours retry-after and then succeeds.
r = client(max_retries=3).responses.create(model="m", input="[[scenario:storm:2:529]] openai c")
check(r.output_text.startswith("Answer to: openai c"), "SDK retries through an overload storm")
print("openai_sdk_check: all passed")
