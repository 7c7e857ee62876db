# The runtime's loop suite again, on OpenAI's Responses API (the `codex` runtime): the same
# answers, tools, ask, limits, cancel, model errors and crash resume the suite proves on
# Anthropic's Messages API in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
SEALPOD_TEST_PROVIDER=openai cargo test --locked --workspace --test runtime_loop
