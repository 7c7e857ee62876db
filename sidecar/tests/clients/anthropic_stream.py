"""Streams a Messages call with the official Anthropic Python SDK, holding only the sealed token.

Everything comes from the environment the sandbox would have: ANTHROPIC_API_KEY (the sealed
token), ANTHROPIC_BASE_URL, HTTPS_PROXY and SSL_CERT_FILE (the per-pod CA).
"""
import os
import sys

import anthropic

client = anthropic.Anthropic()
text = []
with client.messages.stream(
    model="claude-fake",
    max_tokens=16,
    messages=[{"role": "user", "content": "hello"}],
) as stream:
    for chunk in stream.text_stream:
        text.append(chunk)
final = stream.get_final_message()
got = "".join(text)
if got != "Hello through the proxy" or final.stop_reason != "end_turn":
    print(f"unexpected: {got!r} {final.stop_reason!r}", file=sys.stderr)
    sys.exit(1)
assert os.environ["ANTHROPIC_API_KEY"].startswith("sp_sealed_")
print(f"python sdk {anthropic.__version__}: streamed {len(text)} deltas: {got}")
