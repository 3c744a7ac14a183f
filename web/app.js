// strata chat: the page served at GET / by `strata serve`.
//
// Talks to the server's OpenAI API on the same origin: GET /v1/models for the
// model's name, POST /v1/chat/completions with stream: true for replies (the
// server applies the model's chat template to the messages sent). The
// conversation, the sampling settings and the API key live in localStorage.
// A 401 opens a dialog asking for the key, then the request is retried with
// "Authorization: Bearer <key>". Stop aborts the fetch; the server notices the
// closed connection and cancels the generation.
'use strict';

const STORE = {
  conversation: 'strata.chat.conversation',  // [{role, content, stats?, state?}]
  settings: 'strata.chat.settings',          // {system, temperature, ...} as typed
  key: 'strata.chat.apiKey',
};
// Settings sent as numbers when filled in; empty fields leave the server's default.
const NUMERIC_SETTINGS = ['temperature', 'top_p', 'top_k', 'min_p', 'max_tokens', 'seed'];
const INTEGER_SETTINGS = new Set(['top_k', 'max_tokens', 'seed']);

const el = {
  log: document.getElementById('log'),
  empty: document.getElementById('empty-note'),
  modelName: document.getElementById('model-name'),
  newChat: document.getElementById('new-chat'),
  settings: document.getElementById('settings-form'),
  forgetKey: document.getElementById('forget-key'),
  form: document.getElementById('chat-form'),
  prompt: document.getElementById('prompt'),
  send: document.getElementById('send'),
  stop: document.getElementById('stop'),
  status: document.getElementById('status'),
  keyDialog: document.getElementById('key-dialog'),
  keyForm: document.getElementById('key-form'),
  keyReason: document.getElementById('key-reason'),
  keyInput: document.getElementById('key-input'),
};

const state = {
  messages: loadJson(STORE.conversation, []),
  model: null,        // id from /v1/models
  controller: null,   // AbortController of the running generation, if any
};

// ---- storage ----

function loadJson(name, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(name));
    return value ?? fallback;
  } catch {
    return fallback;
  }
}

function saveJson(name, value) {
  try {
    localStorage.setItem(name, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the page keeps working, the conversation is just not kept.
  }
}

function saveConversation() {
  saveJson(STORE.conversation, state.messages);
}

// ---- API key and requests ----

function apiKey() {
  return localStorage.getItem(STORE.key) || '';
}

// Opens the key dialog; resolves to true once a key is saved, false if dismissed.
function askForKey(reason) {
  el.keyReason.textContent = reason;
  el.keyInput.value = '';
  el.keyDialog.returnValue = '';
  el.keyDialog.showModal();
  return new Promise((resolve) => {
    el.keyDialog.addEventListener('close', () => {
      const key = el.keyInput.value.trim();
      if (el.keyDialog.returnValue !== 'save' || key === '') return resolve(false);
      localStorage.setItem(STORE.key, key);
      resolve(true);
    }, { once: true });
  });
}

// fetch on the API with the key; on 401 asks for a key and retries.
async function apiFetch(path, init = {}) {
  for (;;) {
    const headers = {};
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401) return response;
    const reason = key
      ? 'The server did not accept the saved API key. Enter the key it was started with (--api-key).'
      : 'This server needs an API key (it was started with --api-key).';
    if (!(await askForKey(reason))) throw new Error('An API key is needed to talk to this server.');
  }
}

// The message of an OpenAI error body, else the HTTP status.
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body?.error?.message) return `${body.error.message} (HTTP ${response.status})`;
  } catch {
    // not JSON
  }
  return `HTTP ${response.status} ${response.statusText}`;
}

// Yields the data of each server-sent event in a response body.
async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
          .join('\n');
        if (data !== '') yield data;  // comments (": keep-alive") carry no data
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// ---- rendering ----

function setStatus(text) {
  el.status.textContent = text;
}

function formatStats(stats) {
  const parts = [`${stats.tokens} token${stats.tokens === 1 ? '' : 's'}`];
  if (stats.tokensPerSecond != null) parts.push(`${stats.tokensPerSecond.toFixed(1)} tokens/s`);
  if (stats.firstTokenMs != null) parts.push(`first token after ${Math.round(stats.firstTokenMs)} ms`);
  if (stats.finish) parts.push(stats.finish);
  return parts.join(' · ');
}

// One message's element; its parts are updated in place while streaming.
function messageView(message) {
  const view = document.createElement('article');
  view.className = `message ${message.role}`;
  const role = document.createElement('p');
  role.className = 'role';
  role.textContent = { user: 'You', assistant: state.model ?? 'Assistant', error: 'Error' }[message.role] ?? message.role;
  const text = document.createElement('p');
  text.className = 'text';
  const stats = document.createElement('p');
  stats.className = 'stats';
  view.append(role, text, stats);
  updateView(view, message);
  return view;
}

function updateView(view, message) {
  view.querySelector('.text').textContent = message.content;
  view.querySelector('.stats').textContent = message.stats ? formatStats(message.stats) : '';
  view.dataset.state = message.state ?? 'done';
  view.classList.toggle('streaming', message.state === 'streaming');
  // Screen readers announce the reply once it is complete, not token by token.
  view.setAttribute('aria-busy', String(message.state === 'streaming'));
}

function nearBottom() {
  const scroller = el.log.parentElement;
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
}

function scrollToBottom() {
  const scroller = el.log.parentElement;
  scroller.scrollTop = scroller.scrollHeight;
}

function renderAll() {
  el.log.replaceChildren(el.empty, ...state.messages.map(messageView));
  el.empty.hidden = state.messages.length > 0;
  scrollToBottom();
}

function append(message) {
  state.messages.push(message);
  el.empty.hidden = true;
  const view = messageView(message);
  el.log.append(view);
  scrollToBottom();
  return view;
}

function setBusy(busy) {
  el.send.disabled = busy;
  el.stop.disabled = !busy;
}

// ---- settings ----

function loadSettings() {
  const saved = loadJson(STORE.settings, {});
  for (const input of el.settings.elements) {
    if (input.name && typeof saved[input.name] === 'string') input.value = saved[input.name];
  }
}

function saveSettings() {
  const values = {};
  for (const input of el.settings.elements) if (input.name) values[input.name] = input.value;
  saveJson(STORE.settings, values);
}

// The request fields for the filled-in settings.
function samplingFields() {
  const fields = {};
  for (const name of NUMERIC_SETTINGS) {
    const raw = el.settings.elements[name].value.trim();
    if (raw === '') continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || (INTEGER_SETTINGS.has(name) && !Number.isInteger(value)))
      throw new Error(`Setting ${name} must be ${INTEGER_SETTINGS.has(name) ? 'an integer' : 'a number'}.`);
    fields[name] = value;
  }
  return fields;
}

// The messages the server renders with the model's chat template.
function requestMessages() {
  const messages = [];
  const system = el.settings.elements.system.value.trim();
  if (system) messages.push({ role: 'system', content: system });
  for (const m of state.messages) {
    if ((m.role === 'user' || m.role === 'assistant') && m.content !== '') messages.push({ role: m.role, content: m.content });
  }
  return messages;
}

// ---- chat ----

async function loadModel() {
  try {
    const response = await apiFetch('/v1/models');
    if (!response.ok) throw new Error(await errorMessage(response));
    const body = await response.json();
    state.model = body?.data?.[0]?.id ?? null;
    el.modelName.textContent = state.model ?? '(none)';
    // Assistant messages are labelled with the model's name.
    for (const role of el.log.querySelectorAll('.message.assistant .role')) role.textContent = state.model ?? 'Assistant';
  } catch (error) {
    el.modelName.textContent = '(unknown)';
    setStatus(`Could not read the model: ${error.message}`);
  }
}

async function send(text) {
  let fields;
  try {
    fields = samplingFields();
  } catch (error) {
    setStatus(error.message);
    return;
  }
  append({ role: 'user', content: text });
  saveConversation();
  const body = JSON.stringify({
    model: state.model ?? 'default',
    messages: requestMessages(),
    stream: true,
    stream_options: { include_usage: true },
    ...fields,
  });

  const reply = { role: 'assistant', content: '', state: 'streaming', stats: null };
  const view = append(reply);
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  setStatus('Generating…');

  const started = performance.now();
  let first = null;  // time of the first and of the latest text chunk
  let last = null;
  let chunks = 0;    // text chunks: one per token, so a live count
  let usage = null;
  let finish = null;
  let framePending = false;
  const update = () => {
    const tokens = usage?.completion_tokens ?? chunks;
    // Decode speed: tokens after the first over the time since the first. A
    // reply of under 0.1 s arrives in a few bursts that hide its pace: it is
    // timed from the request instead.
    let tokensPerSecond = null;
    if (chunks >= 2 && last - first >= 100) tokensPerSecond = (chunks - 1) / ((last - first) / 1000);
    else if (chunks >= 1) tokensPerSecond = chunks / ((last - started) / 1000);
    reply.stats = { tokens, tokensPerSecond, firstTokenMs: first != null ? first - started : null, finish };
    updateView(view, reply);
  };
  // Chunks arrive faster than the screen refreshes (a small model sends
  // hundreds a second): the view is updated once per frame.
  const render = () => {
    framePending = false;
    const follow = nearBottom();
    update();
    if (follow) scrollToBottom();
  };
  try {
    const response = await apiFetch('/v1/chat/completions', { method: 'POST', body, signal: controller.signal });
    if (!response.ok) throw new Error(await errorMessage(response));
    let complete = false;
    for await (const data of sseData(response.body)) {
      if (data === '[DONE]') {
        complete = true;
        break;
      }
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message ?? 'the server reported an error');
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices?.[0];
      if (choice?.finish_reason) finish = choice.finish_reason === 'length' ? 'stopped at the token limit' : null;
      const delta = choice?.delta?.content;
      if (delta) {
        last = performance.now();
        first ??= last;
        chunks += 1;
        reply.content += delta;
        if (!framePending) {
          framePending = true;
          requestAnimationFrame(render);
        }
      }
    }
    if (!complete) throw new Error('The server closed the stream before the reply was finished.');
    reply.state = 'done';
    setStatus('');
  } catch (error) {
    if (error.name === 'AbortError') {
      reply.state = 'stopped';
      finish = 'stopped';
      setStatus('Stopped.');
    } else {
      reply.state = 'failed';
      setStatus('');
      append({ role: 'error', content: error.message });
    }
  } finally {
    update();
    const index = state.messages.indexOf(reply);
    if (reply.content === '' && reply.state === 'failed' && index >= 0) {
      state.messages.splice(index, 1);
      view.remove();
    }
    saveConversation();
    if (state.controller === controller) state.controller = null;
    setBusy(false);
  }
}

function stop() {
  state.controller?.abort();
}

// ---- wiring ----

el.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = el.prompt.value.trim();
  if (text === '' || state.controller) return;
  el.prompt.value = '';
  send(text);
});

el.prompt.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    el.form.requestSubmit();
  } else if (event.key === 'Escape') {
    stop();
  }
});

el.stop.addEventListener('click', stop);

el.newChat.addEventListener('click', () => {
  stop();
  state.messages = [];
  saveConversation();
  renderAll();
  setStatus('');
  el.prompt.focus();
});

// Opening the settings shrinks the conversation: keep its end in view.
document.getElementById('settings').addEventListener('toggle', scrollToBottom);
el.settings.addEventListener('input', saveSettings);
el.settings.addEventListener('submit', (event) => event.preventDefault());

el.forgetKey.addEventListener('click', () => {
  localStorage.removeItem(STORE.key);
  setStatus('The API key was removed from this browser.');
});

// A previous page's generation cannot be resumed: show it as stopped.
for (const m of state.messages) if (m.state === 'streaming') m.state = 'stopped';
loadSettings();
renderAll();
loadModel();
