// `strata serve` under mpirun (run.sh with STRATA_E2E_MPI=N: --split tensor,
// with STRATA_E2E_SPLIT=layer --split layer --micro-batch 4, or with
// STRATA_E2E_KV_NODES --split none --kv-nodes; --mpi-keepalive 0.5): an idle server keeps the job alive (the other ranks
// would end it after 4 missed pings, 2 s); four requests at once, run in
// one batch across the ranks, each equal `strata run` in one process; and
// sessions move between the ranks and one process (STRATA_E2E_SESSION_DIR,
// the server's --session-dir) both ways, continuing exactly.
// Skipped without STRATA_E2E_MPI; the rest of the suite runs against the
// same server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';

const ranks = process.env.STRATA_E2E_MPI;
const client = new OpenAI({ baseURL: process.env.STRATA_E2E_BASE_URL, apiKey: process.env.STRATA_E2E_API_KEY,
  maxRetries: 0 });

function strataRun(prompt, n, more = []) {
  return execFileSync(process.env.STRATA_CLI,
    ['run', '-m', process.env.STRATA_E2E_MODEL, '-p', prompt, '-n', String(n), '--temp', '0', '-t', '1', ...more],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}
// The CLI's view of this key's sessions: the server keeps each API key's in a directory of its own.
function inSessions(name) {
  const root = process.env.STRATA_E2E_SESSION_DIR;
  const keys = readdirSync(root).filter((d) => d.startsWith('key-'));
  assert.equal(keys.length, 1);
  return ['--session-dir', join(root, keys[0]), '--session', name];
}

test('an idle server outlives the ranks\' wait: it pings them', { skip: !ranks }, async () => {
  await sleep(3500);
  const r = await client.completions.create({ model: 'any', prompt: 'Lily', max_tokens: 16, temperature: 0 });
  assert.equal(r.choices[0].text, strataRun('Lily', 16));
});

test('concurrent requests across the ranks equal strata run', { skip: !ranks }, async () => {
  const prompts = ['Once upon a time', 'The dog', 'Tom and Sue went', 'A little bird'];
  const results = await Promise.all(prompts.map((prompt) =>
    client.completions.create({ model: 'any', prompt, max_tokens: 40, temperature: 0 })));
  results.forEach((r, i) => assert.equal(r.choices[0].text, strataRun(prompts[i], 40)));
});

test('a session the ranks saved continues in one process, and back', { skip: !ranks }, async () => {
  const whole = strataRun('Once upon a time', 48);
  const first = await client.completions.create({ model: 'any', prompt: 'Once upon a time', max_tokens: 16,
    temperature: 0, session: 'moved' });
  const second = strataRun('', 16, inSessions('moved'));
  const third = await client.completions.create({ model: 'any', prompt: '', max_tokens: 16, temperature: 0,
    session: 'moved' });
  assert.equal(first.choices[0].text + second + third.choices[0].text, whole);
});
