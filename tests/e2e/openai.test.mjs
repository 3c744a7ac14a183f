// `strata serve` through the official openai client: completions, chat,
// streaming of both, usage, errors, greedy equality with `strata run`, and
// structured output (response_format json_schema).
// Started by run.sh, which provides:
//   STRATA_E2E_BASE_URL  http://127.0.0.1:PORT/v1 of a running `strata serve`
//   STRATA_E2E_API_KEY   the key it was started with
//   STRATA_CLI           the strata binary;  STRATA_E2E_MODEL  the model it serves
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';

const baseURL = process.env.STRATA_E2E_BASE_URL;
const apiKey = process.env.STRATA_E2E_API_KEY;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const PROMPT = 'Once upon a time';

function strataRun(prompt, n) {
  return execFileSync(process.env.STRATA_CLI,
    ['run', '-m', process.env.STRATA_E2E_MODEL, '-p', prompt, '-n', String(n), '--temp', '0', '-t', '1'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

test('models.list names the served model', async () => {
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  assert.equal(models.length, 1);
  assert.equal(models[0].object, 'model');
  const one = await client.models.retrieve(models[0].id);
  assert.equal(one.id, models[0].id);
});

test('greedy completion equals strata run', async () => {
  const r = await client.completions.create({ model: 'any', prompt: PROMPT, max_tokens: 48, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, strataRun(PROMPT, 48));
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.deepEqual(r.usage, { prompt_tokens: 5, completion_tokens: 48, total_tokens: 53 });
});

test('streamed completion equals the whole one, with a usage chunk', async () => {
  const params = { model: 'any', prompt: 'The cat', max_tokens: 32, temperature: 0 };
  const whole = await client.completions.create(params);
  const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'text_completion');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    text += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, whole.usage);
});

test('chat completion', async () => {
  const r = await client.chat.completions.create({
    model: 'any',
    messages: [{ role: 'system', content: 'Tell a story.' }, { role: 'user', content: 'Lily had a cat.' }],
    max_completion_tokens: 40,
    temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  // The model has no chat template: the plain one renders this prompt.
  assert.equal(r.choices[0].message.content,
    strataRun('System: Tell a story.\nUser: Lily had a cat.\nAssistant:', 40));
  assert.equal(r.usage.completion_tokens, 40);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 40);
});

test('streamed chat equals the whole one', async () => {
  const params = { model: 'any', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 24, temperature: 0 };
  const whole = await client.chat.completions.create(params);
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    role = chunk.choices[0].delta.role ?? role;
    text += chunk.choices[0].delta.content ?? '';
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(role, 'assistant');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, whole.usage);
});

test('chat logprobs', async () => {
  const r = await client.chat.completions.create({
    model: 'any', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0,
    logprobs: true, top_logprobs: 2,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 6);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
  }
  assert.equal(content.map((t) => Buffer.from(t.bytes).toString('utf8')).join(''), r.choices[0].message.content);
});

test('a prompt batch with n=2: each prompt greedy equals strata run, streamed by index', async () => {
  const prompts = [PROMPT, 'The cat'];
  const params = { model: 'any', prompt: prompts, n: 2, max_tokens: 16, temperature: 0 };
  const whole = await client.completions.create(params);
  assert.equal(whole.choices.length, 4);
  const byIndex = new Map(whole.choices.map((c) => [c.index, c.text]));
  for (let p = 0; p < 2; ++p) {
    const expected = strataRun(prompts[p], 16);
    for (let i = 0; i < 2; ++i) assert.equal(byIndex.get(p * 2 + i), expected);
  }
  const stream = await client.completions.create({ ...params, stream: true });
  const streamed = new Map();
  for await (const chunk of stream) {
    for (const c of chunk.choices) streamed.set(c.index, (streamed.get(c.index) ?? '') + c.text);
  }
  assert.deepEqual(streamed, byIndex);
});

test('a wrong key is an AuthenticationError', async () => {
  const bad = new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.completions.create({ model: 'any', prompt: 'x', max_tokens: 1 }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key');
});

test('an invalid parameter is a BadRequestError naming it', async () => {
  await assert.rejects(client.completions.create({ model: 'any', prompt: 'x', temperature: 7 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature');
});

// Structured output: what the client's response_format asks for.
const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 20 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    mood: { enum: ['happy', 'sad'] },
    tags: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3 },
  },
  required: ['name', 'age', 'mood'],
  additionalProperties: false,
};

function assertPerson(text) {
  const v = JSON.parse(text);
  assert.deepEqual(Object.keys(v).filter((k) => !['name', 'age', 'mood', 'tags'].includes(k)), []);
  assert.equal(typeof v.name, 'string');
  assert.ok(v.name.length <= 20);
  assert.ok(Number.isInteger(v.age) && v.age >= 0 && v.age <= 120, text);
  assert.ok(['happy', 'sad'].includes(v.mood), text);
  if (v.tags !== undefined) {
    assert.ok(Array.isArray(v.tags) && v.tags.length <= 3, text);
    for (const t of v.tags) assert.ok(typeof t === 'string' && t.length <= 8, text);
  }
}

test('response_format json_schema: every sampled chat answer is a valid object', async () => {
  let finished = 0;
  for (let seed = 0; seed < 6; seed++) {
    const r = await client.chat.completions.create({
      model: 'any', messages: [{ role: 'user', content: 'Describe a person.' }], temperature: 1, seed, max_tokens: 300,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } },
    });
    if (r.choices[0].finish_reason !== 'stop') continue;
    finished++;
    assertPerson(r.choices[0].message.content);
  }
  assert.ok(finished >= 4, `${finished} of 6 finished`);
});

test('response_format json_schema streamed equals the whole answer', async () => {
  const params = {
    model: 'any', messages: [{ role: 'user', content: 'Hi' }], temperature: 1, seed: 3, max_tokens: 300,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON } },
  };
  const whole = await client.chat.completions.create(params);
  let text = '';
  for await (const chunk of await client.chat.completions.create({ ...params, stream: true })) {
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, whole.choices[0].message.content);
  if (whole.choices[0].finish_reason === 'stop') assertPerson(text);
});

test('an unsupported schema keyword is a BadRequestError naming response_format', async () => {
  await assert.rejects(client.chat.completions.create({
    model: 'any', messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'array', uniqueItems: true } } },
  }), (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'response_format' &&
    e.message.includes('uniqueItems'));
});
