// Streams a Messages call with the official Anthropic Node SDK, holding only the sealed token.
// Proxy from HTTPS_PROXY (undici's EnvHttpProxyAgent: Node 20's fetch ignores the variable), CA
// from NODE_EXTRA_CA_CERTS, key and base URL from ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL.
import Anthropic from '@anthropic-ai/sdk';
import { EnvHttpProxyAgent, fetch } from 'undici';

const client = new Anthropic({ fetch, fetchOptions: { dispatcher: new EnvHttpProxyAgent() } });
const stream = client.messages.stream({
  model: 'claude-fake',
  max_tokens: 16,
  messages: [{ role: 'user', content: 'hello' }],
});
const deltas = [];
stream.on('text', (t) => deltas.push(t));
const final = await stream.finalMessage();
const got = deltas.join('');
if (got !== 'Hello through the proxy' || final.stop_reason !== 'end_turn') {
  console.error(`unexpected: ${JSON.stringify(got)} ${final.stop_reason}`);
  process.exit(1);
}
if (!process.env.ANTHROPIC_API_KEY.startsWith('sp_sealed_')) process.exit(1);
console.log(`node sdk: streamed ${deltas.length} deltas: ${got}`);
