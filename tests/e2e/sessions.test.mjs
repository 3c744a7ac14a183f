// Sessions (strata's extension, docs/SERVER.md) through the official openai
// client: `session` as an extra body field, the /v1/sessions routes through
// the client's generic get/post/delete. A completion continued on a session
// equals one uninterrupted `strata run`; fork, rollback, push/pop; errors in
// the OpenAI format. Started by run.sh (which passes --session-dir).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.STRATA_E2E_BASE_URL, apiKey: process.env.STRATA_E2E_API_KEY,
                            maxRetries: 0 });
const PROMPT = 'Once upon a time';

function strataRun(prompt, n) {
  return execFileSync(process.env.STRATA_CLI,
    ['run', '-m', process.env.STRATA_E2E_MODEL, '-p', prompt, '-n', String(n), '--temp', '0', '-t', '1'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

const complete = (session, prompt, n) =>
  client.completions.create({ model: 'any', prompt, max_tokens: n, temperature: 0, session });

test('a completion continued on a session equals one strata run', async () => {
  const a = await complete('e2e-story', PROMPT, 20);
  const b = await complete('e2e-story', '', 20);
  assert.equal(a.choices[0].text + b.choices[0].text, strataRun(PROMPT, 40));
  // The second request computed only the last token of the first one.
  assert.equal(b.usage.prompt_tokens, 5 + 20);
  assert.equal(b.usage.prompt_tokens_details.cached_tokens, 5 + 20 - 1);
  const s = await client.get('/sessions/e2e-story');
  assert.equal(s.object, 'session');
  assert.equal(s.tokens, 5 + 40);
  const list = await client.get('/sessions');
  assert.ok(list.data.some((x) => x.id === 'e2e-story'));
});

test('fork, then rollback the fork: the original is untouched', async () => {
  await complete('e2e-base', PROMPT, 10);
  const fork = await client.post('/sessions/e2e-base/fork', { body: { to: 'e2e-twin' } });
  assert.equal(fork.id, 'e2e-twin');
  const rolled = await client.post('/sessions/e2e-twin/rollback', { body: { tokens: 5 } });
  assert.equal(rolled.tokens, 5);
  assert.equal((await client.get('/sessions/e2e-base')).tokens, 15);
  // The rolled-back twin continues as a fresh run of the prompt.
  const t = await complete('e2e-twin', '', 10);
  assert.equal(t.choices[0].text, strataRun(PROMPT, 10));
  const del = await client.delete('/sessions/e2e-twin');
  assert.deepEqual(del, { id: 'e2e-twin', object: 'session.deleted', deleted: true });
});

test('push and pop return a chat session to the same point', async () => {
  const chat = (content) => client.chat.completions.create({
    model: 'any', messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0, session: 'e2e-chat' });
  await chat('Tell me a story.');
  const pushed = await client.post('/sessions/e2e-chat/push');
  assert.equal(pushed.stack_depth, 1);
  const inside = await chat('A side question.');
  const popped = await client.post('/sessions/e2e-chat/pop');
  assert.equal(popped.stack_depth, 0);
  const again = await chat('A side question.');
  assert.equal(again.choices[0].message.content, inside.choices[0].message.content);
});

test('session errors are OpenAI errors', async () => {
  await assert.rejects(client.get('/sessions/e2e-missing'), (e) => e.status === 404);
  await assert.rejects(complete('../etc', PROMPT, 4), (e) => e.status === 400 && e.error?.param === 'session');
  await assert.rejects(client.post('/sessions/e2e-story/rollback', { body: { tokens: 10000 } }),
                       (e) => e.status === 400);
});
