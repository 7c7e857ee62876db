"""Proves the official `anthropic` SDK parses the fake model's answers.

Usage: sdk_check.py BASE_URL CERT_PEM KEY_FILE. Exits non-zero on the first mismatch.
"""
import ssl
import sys

import anthropic

base_url, cert, key_file = sys.argv[1], sys.argv[2], sys.argv[3]
key = open(key_file).read().strip()
ctx = ssl.create_default_context(cafile=cert)


def client(api_key=key):
    return anthropic.Anthropic(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(verify=ctx),
    )


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


TOOLS = [
    {"name": n, "description": n, "input_schema": {"type": "object"}}
    for n in ["bash", "read_file", "write_file", "edit_file", "ask"]
]
c = client()

# Non-streaming plain answer.
msg = c.messages.create(
    model="claude-test", max_tokens=100,
    messages=[{"role": "user", "content": "[[scenario:answer]] hello"}],
)
check(msg.type == "message" and msg.role == "assistant", "non-streaming message shape")
check(msg.content[0].type == "text" and msg.content[0].text.startswith("Answer to: hello"), "non-streaming text")
check(msg.stop_reason == "end_turn" and msg.usage.output_tokens > 0, "non-streaming stop_reason and usage")

# Streaming plain answer, through the SDK's event accumulator.
seen = []
with c.messages.stream(
    model="claude-test", max_tokens=100,
    messages=[{"role": "user", "content": "[[scenario:slow:8:5]] hi"}],
) as stream:
    for event in stream:
        seen.append(event.type)
    final = stream.get_final_message()
check(seen[0] == "message_start" and "content_block_delta" in seen and seen[-1] == "message_stop", f"stream event order {seen[:3]}…{seen[-2:]}")
check(final.content[0].text == "".join(f"w{i:03} " for i in range(8)), "streamed text reassembled")
check(final.stop_reason == "end_turn", "streamed stop_reason")

# Streaming tool_use: input_json_delta pieces reassemble into the tool input.
with c.messages.stream(
    model="claude-test", max_tokens=100, tools=TOOLS,
    messages=[{"role": "user", "content": "[[scenario:tool_chain]] go"}],
) as stream:
    final = stream.get_final_message()
tool = [b for b in final.content if b.type == "tool_use"][0]
check(final.stop_reason == "tool_use", "tool_use stop_reason")
check(tool.name == "write_file" and tool.input == {"path": "chain.txt", "content": "alpha\n"}, f"tool input reassembled: {tool.input}")
check(final.content[0].type == "text", "narration before the tool call")

# Feeding the tool result back advances the chain.
msg = c.messages.create(
    model="claude-test", max_tokens=100, tools=TOOLS,
    messages=[
        {"role": "user", "content": "[[scenario:tool_chain]] go"},
        {"role": "assistant", "content": [b.model_dump() for b in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "written"}]},
    ],
)
check(msg.content[0].type == "tool_use" and msg.content[0].name == "read_file", "second step of the chain")

# Raw streaming events (no accumulator), including ping.
stream = c.messages.create(
    model="claude-test", max_tokens=100, stream=True,
    messages=[{"role": "user", "content": "[[scenario:huge_usage:5000]] x"}],
)
raw = list(stream)
check(raw[0].type == "message_start" and raw[0].message.usage.input_tokens == 5000, "raw stream usage in message_start")
check(any(e.type == "message_delta" and e.usage.output_tokens > 0 for e in raw), "raw stream message_delta usage")

# Errors become the SDK's typed exceptions.
try:
    client(api_key="sk-wrong").messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    check(False, "wrong key refused")
except anthropic.AuthenticationError as e:
    check(e.status_code == 401 and e.body["error"]["type"] == "authentication_error", "wrong key → AuthenticationError")
try:
    c.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "[[scenario:storm:1:429]] a"}])
    check(False, "429 raised")
except anthropic.RateLimitError as e:
    check(e.response.headers.get("retry-after") == "1", "429 → RateLimitError with retry-after")
try:
    c.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "[[scenario:storm:1:529]] b"}])
    check(False, "529 raised")
except anthropic.APIStatusError as e:
    check(e.status_code == 529 and e.body["error"]["type"] == "overloaded_error", "529 → overloaded_error")
msg = c.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "[[scenario:storm:1:529]] b"}])
check(msg.content[0].type == "text", "after the storm the same conversation succeeds")

# The SDK's own retry honours retry-after and then succeeds.
retrying = anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=3, http_client=anthropic.DefaultHttpxClient(verify=ctx))
msg = retrying.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "[[scenario:storm:2:529]] c"}])
check(msg.content[0].text.startswith("Answer to: c"), "SDK retries through a 529 storm")
print("sdk_check: all passed")
