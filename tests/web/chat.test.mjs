// The web chat page of `strata serve` (GET /) in headless Debian chromium,
// driven by playwright-core, against real `strata serve` processes on the
// bundled model: the page loads with nothing but its own files and no CSP
// violation, streams a reply equal to the API's own greedy answer, sends the
// settings and the conversation, keeps the conversation across a reload,
// stops a generation mid-way (and the server stops generating), and asks for
// the API key when the server has one. Run by run.sh, which sets:
//   STRATA_CLI, STRATA_WEB_MODEL, STRATA_CHROMIUM, STRATA_WEB_SCREENSHOT
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = process.env.STRATA_CLI ?? join(root, 'build', 'strata');
const model = process.env.STRATA_WEB_MODEL ?? join(root, 'models', 'stories260K.gguf');
const browserPath = process.env.STRATA_CHROMIUM ?? '/usr/bin/chromium';
const screenshotPath = process.env.STRATA_WEB_SCREENSHOT ?? join(root, 'build', 'web-chat.png');
// Without the background-networking flags chromium keeps trying to reach
// Google's services, which on a closed network means a flood of failures.
const BROWSER_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMEOUT = 60_000;

// ---- strata serve ----

// Starts `strata serve` on a free port; resolves once its first stderr line names the port.
async function startServer(extraArgs = []) {
  const child = spawn(cli, ['serve', '-m', model, '--port', '0', '-t', '1', ...extraArgs],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`strata serve did not start listening:\n${log}`)), TIMEOUT);
    child.stderr.on('data', (data) => {
      log += data;
      const m = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    exited.then((status) => {
      clearTimeout(timer);
      reject(new Error(`strata serve exited (${status}) before listening:\n${log}`));
    });
  });
  return {
    base,
    // SIGTERM; the server must exit 0.
    async stop() {
      child.kill('SIGTERM');
      const status = await exited;
      assert.equal(status, 0, `strata serve exited with ${status} after SIGTERM:\n${log}`);
    },
  };
}

async function api(server, path, { key, body } = {}) {
  const headers = {};
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body) headers['Content-Type'] = 'application/json';
  const response = await fetch(server.base + path,
    { method: body ? 'POST' : 'GET', headers, body: body && JSON.stringify(body) });
  assert.equal(response.status, 200, `${path}: ${await response.clone().text()}`);
  return path === '/metrics' ? response.text() : response.json();
}

// The API's own (non-streaming) reply to messages.
async function apiReply(server, messages, fields, key) {
  const body = await api(server, '/v1/chat/completions', { key, body: { messages, ...fields } });
  return body.choices[0].message.content;
}

function metric(text, series) {
  const m = text.match(new RegExp(`^${series} (\\S+)$`, 'm'));
  assert.ok(m, `no ${series} in /metrics`);
  return Number(m[1]);
}

// ---- the browser ----

// A browser with a fresh profile (--user-data-dir) of its own.
async function openBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'strata-web-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: browserPath, headless: true, args: BROWSER_FLAGS, viewport: { width: 1000, height: 800 },
  });
  context.setDefaultTimeout(15_000);
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// Opens the page and records what must not happen: script errors, CSP
// violations (logged as console errors), requests to anything but the server.
// Failed API calls with the statuses in allowStatus are expected (e.g. 401
// where the server has a key).
async function openPage(browser, server, { allowStatus = [] } = {}) {
  const page = await browser.context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`script error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (allowStatus.some((status) => message.text().includes(`status of ${status}`))) return;
    problems.push(`console error: ${message.text()}`);
  });
  page.on('request', (request) => {
    if (!request.url().startsWith(`${server.base}/`)) problems.push(`request outside the server: ${request.url()}`);
  });
  await page.goto(`${server.base}/`);
  return { page, problems };
}

// Polls predicate (async) until it holds; fails after the timeout.
async function until(predicate, what, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const assistantMessages = (page) => page.locator('.message.assistant');

// Waits for the latest assistant message to reach state ("done", "stopped", ...).
async function waitForReply(page, state) {
  await page.locator(`.message.assistant:last-child[data-state="${state}"]`).waitFor();
}

async function setSettings(page, values) {
  const details = page.locator('#settings');
  if (!(await details.evaluate((d) => d.open))) await page.getByText('Settings', { exact: true }).click();
  for (const [label, value] of Object.entries(values)) await page.getByLabel(label, { exact: true }).fill(value);
}

// Types a message, sends it with Enter; resolves to the chat request's JSON body and headers.
async function sendMessage(page, text) {
  const request = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions') && r.method() === 'POST');
  await page.getByLabel('Message').fill(text);
  await page.getByLabel('Message').press('Enter');
  const sent = await request;
  return { body: sent.postDataJSON(), headers: await sent.allHeaders() };
}

// ---- tests ----

describe('web chat page, no API key', () => {
  let server;
  let browser;
  before(async () => {
    // A context of 8192 positions: an 8000-token reply then takes most of a
    // minute (attention grows with every token), so Stop lands mid-way.
    server = await startServer(['-c', '8192']);
    browser = await openBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('serves the files of web/ as they are', async () => {
    const names = readdirSync(join(root, 'web'));
    assert.ok(names.includes('index.html') && names.includes('app.js'));
    for (const name of names) {
      const response = await fetch(`${server.base}/${name}`);
      assert.equal(response.status, 200, name);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), readFileSync(join(root, 'web', name)), name);
      assert.match(response.headers.get('content-security-policy'), /^default-src 'self'/);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    }
  });

  test('streams a reply with the chosen settings and keeps the conversation', { timeout: TIMEOUT }, async () => {
    const { page, problems } = await openPage(browser, server);
    assert.equal(await page.title(), 'strata chat');
    const models = await api(server, '/v1/models');
    await page.locator('#model-name', { hasText: models.data[0].id }).waitFor();
    await page.getByText('The conversation is kept in this browser').waitFor();

    const fields = { temperature: 0, max_tokens: 48 };
    await setSettings(page, { Temperature: '0', 'Max tokens': '48' });
    const first = 'Tell me a story about a cat.';
    const sent = await sendMessage(page, first);
    // The page sends messages (the server applies the chat template) and the settings.
    assert.deepEqual(sent.body.messages, [{ role: 'user', content: first }]);
    assert.equal(sent.body.stream, true);
    assert.equal(sent.body.temperature, 0);
    assert.equal(sent.body.max_tokens, 48);
    assert.equal(sent.headers.authorization, undefined);
    await waitForReply(page, 'done');
    const reply = await assistantMessages(page).last().locator('.text').textContent();
    assert.equal(reply, await apiReply(server, [{ role: 'user', content: first }], fields));
    const stats = await assistantMessages(page).last().locator('.stats').textContent();
    assert.match(stats, /^48 tokens · \d+\.\d tokens\/s · first token after \d+ ms · stopped at the token limit$/);

    // A second turn carries the whole conversation.
    const second = 'What did the cat do next?';
    const next = await sendMessage(page, second);
    const history = [{ role: 'user', content: first }, { role: 'assistant', content: reply },
      { role: 'user', content: second }];
    assert.deepEqual(next.body.messages, history);
    await waitForReply(page, 'done');
    const reply2 = await assistantMessages(page).last().locator('.text').textContent();
    assert.equal(reply2, await apiReply(server, history, fields));

    // The conversation and the settings survive a reload.
    await page.reload();
    await page.locator('#model-name', { hasText: models.data[0].id }).waitFor();
    assert.deepEqual(await page.locator('.message .text').allTextContents(), [first, reply, second, reply2]);
    assert.equal(await page.getByLabel('Temperature').inputValue(), '0');
    assert.equal(await page.getByLabel('Max tokens').inputValue(), '48');

    await setSettings(page, {});
    mkdirSync(dirname(screenshotPath), { recursive: true });
    await page.screenshot({ path: screenshotPath });
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('Stop ends a generation mid-way and the server stops generating', { timeout: TIMEOUT }, async () => {
    const { page, problems } = await openPage(browser, server);
    await page.getByRole('button', { name: 'New chat' }).click();
    assert.equal(await page.locator('.message').count(), 0);
    const maxTokens = 8000;
    await setSettings(page, { Temperature: '1', Seed: '7', 'Max tokens': String(maxTokens), 'Top-k': '40',
      'Top-p': '0.95', 'Min-p': '0.05' });
    const stepsBefore = metric(await api(server, '/metrics'), 'strata_engine_steps_total');
    const sent = await sendMessage(page, 'Tell me a long story.');
    const { messages, model: _, ...fields } = sent.body;
    assert.deepEqual(messages, [{ role: 'user', content: 'Tell me a long story.' }]);
    assert.deepEqual(fields, { stream: true, stream_options: { include_usage: true }, temperature: 1, seed: 7,
      max_tokens: maxTokens, top_k: 40, top_p: 0.95, min_p: 0.05 });

    // The text grows while the reply is streaming.
    const reply = assistantMessages(page).last();
    const streamed = async () => ((await reply.getAttribute('data-state')) === 'streaming'
      ? (await reply.locator('.text').textContent()).length : -1);
    await until(async () => (await streamed()) > 0, 'streamed text');
    const early = await streamed();
    await until(async () => (await streamed()) > early, 'more streamed text');
    assert.ok(await page.getByRole('button', { name: 'Send' }).isDisabled());

    await page.getByRole('button', { name: 'Stop' }).click();
    const stoppedAt = Date.now();
    await waitForReply(page, 'stopped');
    const text = await reply.locator('.text').textContent();
    const stats = await reply.locator('.stats').textContent();
    const tokens = Number(stats.match(/^(\d+) tokens? · /)[1]);
    assert.ok(tokens > 0 && tokens < maxTokens, stats);
    assert.match(stats, / · stopped$/);
    assert.equal(await page.getByRole('status').textContent(), 'Stopped.');

    // The server noticed the closed connection: soon nothing runs, and it
    // generated far fewer tokens than asked for (one step per token). The page
    // may show fewer still: a fast server runs ahead of what the page has read.
    let running = -1;
    while (Date.now() - stoppedAt < 5_000) {
      running = metric(await api(server, '/metrics'), 'strata_requests_running');
      if (running === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(running, 0, 'the stopped generation is still running on the server');
    const steps = metric(await api(server, '/metrics'), 'strata_engine_steps_total') - stepsBefore;
    assert.ok(steps < maxTokens * 0.9, `the server ran ${steps} steps for a stopped request`);
    assert.equal(await reply.locator('.text').textContent(), text, 'text after Stop');

    // The page is ready for the next message; the stopped reply is part of the conversation.
    assert.ok(await page.getByRole('button', { name: 'Stop' }).isDisabled());
    await setSettings(page, { 'Max tokens': '8' });
    const next = await sendMessage(page, 'Go on.');
    assert.deepEqual(next.body.messages.map((m) => m.role), ['user', 'assistant', 'user']);
    assert.equal(next.body.messages[1].content, text);
    await waitForReply(page, 'done');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('shows the server\'s error for a bad setting and keeps going', { timeout: TIMEOUT }, async () => {
    const { page, problems } = await openPage(browser, server, { allowStatus: [400] });
    await page.getByRole('button', { name: 'New chat' }).click();
    await setSettings(page, { Temperature: '3', 'Max tokens': '8' });
    await sendMessage(page, 'Hello');
    const error = page.locator('.message.error');
    await error.waitFor();
    assert.match(await error.textContent(), /temperature.*\(HTTP 400\)/);
    assert.equal(await assistantMessages(page).count(), 0);
    assert.ok(await page.getByRole('button', { name: 'Send' }).isEnabled());
    // Fixed, the same conversation goes on; the error is not sent to the model.
    await setSettings(page, { Temperature: '0' });
    const next = await sendMessage(page, 'Hello again');
    assert.deepEqual(next.body.messages, [{ role: 'user', content: 'Hello' }, { role: 'user', content: 'Hello again' }]);
    await waitForReply(page, 'done');
    assert.deepEqual(problems, []);
    await page.close();
  });
});

describe('web chat page, server with --api-key', () => {
  const key = `web-${process.pid}-${Date.now()}`;
  let server;
  let browser;
  before(async () => {
    server = await startServer(['--api-key', key]);
    browser = await openBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('asks for the key on 401, keeps it, sends it as a bearer token', { timeout: TIMEOUT }, async () => {
    const { page, problems } = await openPage(browser, server, { allowStatus: [401] });
    const dialog = page.getByRole('dialog', { name: 'API key needed' });
    await dialog.waitFor();
    assert.match(await dialog.textContent(), /needs an API key/);

    // A wrong key is refused and asked for again.
    await page.getByLabel('API key', { exact: true }).fill('not-the-key');
    await page.getByRole('button', { name: 'Save key' }).click();
    await dialog.getByText('did not accept').waitFor();
    await page.getByLabel('API key', { exact: true }).fill(key);
    await page.getByRole('button', { name: 'Save key' }).click();
    await dialog.waitFor({ state: 'hidden' });
    const models = await api(server, '/v1/models', { key });
    await page.locator('#model-name', { hasText: models.data[0].id }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('strata.chat.apiKey')), key);

    await setSettings(page, { Temperature: '0', 'Max tokens': '24' });
    const sent = await sendMessage(page, 'Hello!');
    assert.equal(sent.headers.authorization, `Bearer ${key}`);
    await waitForReply(page, 'done');
    assert.equal(await assistantMessages(page).last().locator('.text').textContent(),
      await apiReply(server, [{ role: 'user', content: 'Hello!' }], { temperature: 0, max_tokens: 24 }, key));

    // Kept across a reload: no question asked.
    await page.reload();
    await page.locator('#model-name', { hasText: models.data[0].id }).waitFor();
    assert.equal(await dialog.isVisible(), false);

    // Forgotten: asked again; dismissing the dialog leaves a clear message.
    await setSettings(page, {});
    await page.getByRole('button', { name: 'Forget API key' }).click();
    await page.reload();
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await page.getByRole('status').getByText('An API key is needed').waitFor();
    assert.deepEqual(problems, []);
    await page.close();
  });
});
