// Sampling and ending fields as the official openai client sends them:
// presence_penalty, frequency_penalty, logit_bias, n, max_completion_tokens,
// stop; plus the X-Strata-Ignored-Fields header seen through withResponse().
// Started by run.sh (see openai.test.mjs for the environment it provides).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.STRATA_E2E_BASE_URL;
const apiKey = process.env.STRATA_E2E_API_KEY;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const PROMPT = 'Once upon a time';

// llama-server's /tokenize (not an OpenAI endpoint): the ids of text.
async function tokenize(content) {
  const root = baseURL.replace(/\/v1$/, '');
  const r = await fetch(`${root}/tokenize`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ content, with_pieces: true }),
  });
  assert.equal(r.status, 200);
  return (await r.json()).tokens;
}

// The id of the token " the" (stories260K spells it as one token).
async function theToken() {
  const pieces = await tokenize('the');
  assert.equal(pieces.length, 1);
  assert.equal(pieces[0].piece, ' the');
  return pieces[0].id;
}

test('logit_bias +100 forces a token, at any temperature, on both endpoints', async () => {
  const the = await theToken();
  for (const temperature of [0, 1]) {
    const c = await client.completions.create({
      model: 'any', prompt: PROMPT, max_tokens: 4, temperature, seed: 5, logit_bias: { [the]: 100 },
    });
    assert.equal(c.choices[0].text, ' the the the the');
    const chat = await client.chat.completions.create({
      model: 'any', messages: [{ role: 'user', content: 'Hi' }], max_completion_tokens: 3, temperature,
      seed: 5, logit_bias: { [the]: 100 },
    });
    assert.equal(chat.choices[0].message.content, ' the the the');
    assert.equal(chat.usage.completion_tokens, 3);
  }
});

test('logit_bias -100 bans a token: it never appears among the sampled tokens', async () => {
  const the = await theToken();
  const plain = await client.completions.create({
    model: 'any', prompt: PROMPT, max_tokens: 60, temperature: 0, logprobs: 0,
  });
  assert.ok(plain.choices[0].logprobs.tokens.includes(' the'), 'the greedy story uses " the"');
  for (const seed of [1, 2, 3]) {
    const r = await client.completions.create({
      model: 'any', prompt: PROMPT, max_tokens: 60, temperature: 1, seed, logprobs: 0, logit_bias: { [the]: -100 },
    });
    assert.ok(!r.choices[0].logprobs.tokens.includes(' the'), r.choices[0].text);
  }
});

test('presence and frequency penalties change the text, reproducibly with a seed', async () => {
  const params = { model: 'any', prompt: PROMPT, max_tokens: 48, temperature: 0 };
  const plain = await client.completions.create(params);
  const penalized = { ...params, presence_penalty: 1.5, frequency_penalty: 1.0 };
  const a = await client.completions.create(penalized);
  const b = await client.completions.create(penalized);
  assert.notEqual(a.choices[0].text, plain.choices[0].text);
  assert.equal(a.choices[0].text, b.choices[0].text);
  const sampled = { ...penalized, temperature: 0.9, seed: 11 };
  const s1 = await client.completions.create(sampled);
  const s2 = await client.completions.create(sampled);
  assert.equal(s1.choices[0].text, s2.choices[0].text);
});

test('an out-of-range penalty or bias is a BadRequestError naming it', async () => {
  await assert.rejects(client.completions.create({ model: 'any', prompt: 'x', presence_penalty: 3 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'presence_penalty');
  await assert.rejects(client.completions.create({ model: 'any', prompt: 'x', logit_bias: { 5: 101 } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'logit_bias');
  await assert.rejects(client.completions.create({ model: 'any', prompt: 'x', logit_bias: { 999999: 1 } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'logit_bias');
});

test('n sampled chat choices with a seed differ and reproduce', async () => {
  const params = {
    model: 'any', messages: [{ role: 'user', content: 'Tell me a story.' }], n: 3, max_completion_tokens: 24,
    temperature: 1, seed: 7, frequency_penalty: 0.5,
  };
  const a = await client.chat.completions.create(params);
  const b = await client.chat.completions.create(params);
  assert.equal(a.choices.length, 3);
  const texts = a.choices.map((c) => c.message.content);
  assert.equal(new Set(texts).size, 3);
  assert.deepEqual(b.choices.map((c) => c.message.content), texts);
  assert.equal(a.usage.completion_tokens, 3 * 24);
});

test('stop ends the text before the stop string', async () => {
  const params = { model: 'any', prompt: PROMPT, max_tokens: 80, temperature: 0 };
  const full = (await client.completions.create(params)).choices[0].text;
  const cut = full.indexOf('Lily');
  assert.ok(cut > 0, full);
  const r = await client.completions.create({ ...params, stop: ['Lily', 'zebra'] });
  assert.equal(r.choices[0].text, full.slice(0, cut));
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('fields strata ignores are named in X-Strata-Ignored-Fields', async () => {
  const { response } = await client.completions
    .create({ model: 'any', prompt: 'x', max_tokens: 1, frobnicate: true, best_of: 1 })
    .withResponse();
  assert.equal(response.headers.get('x-strata-ignored-fields'), 'frobnicate');
  const plain = await client.completions.create({ model: 'any', prompt: 'x', max_tokens: 1 }).withResponse();
  assert.equal(plain.response.headers.get('x-strata-ignored-fields'), null);
});
