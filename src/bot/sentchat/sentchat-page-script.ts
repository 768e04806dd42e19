/**
 * The SENTchat page's script: vanilla JS, no build step, inline (hashed into the page's CSP).
 * Every piece of text from the server is put in the page with `textContent` or as a text node;
 * the small markup chat messages use (*bold*, _italic_, `code`, ```blocks```, :emoji:, links) is
 * built as elements, never as HTML strings. Links are only http(s).
 */
export const SENTCHAT_SCRIPT = String.raw`
const EMOJI = {
  rotating_light: '🚨', warning: '⚠️', white_check_mark: '✅', no_entry: '⛔', information_source: 'ℹ️', memo: '📝',
  key: '🔑', ballot_box_with_check: '☑️', x: '❌', hourglass_flowing_sand: '⏳', alarm_clock: '⏰', heavy_minus_sign: '➖',
  pushpin: '📌', red_circle: '🔴', large_orange_circle: '🟠', large_green_circle: '🟢', white_circle: '⚪', grey_question: '❔',
  lock: '🔒', unlock: '🔓', arrows_counterclockwise: '🔄', arrow_forward: '▶️', mag: '🔍', shield: '🛡️', fire: '🔥',
  bell: '🔔', robot_face: '🤖', call: '📞', telephone_receiver: '📞', large_blue_circle: '🔵', large_yellow_circle: '🟡',
  heavy_check_mark: '✔️', hammer_and_wrench: '🛠️', eyes: '👀', tada: '🎉', bulb: '💡', link: '🔗', clipboard: '📋',
};
const TICK = '\x60';

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};

const state = {
  me: null, channels: new Map(), current: null, messages: new Map(), oldestSeq: null, hasMore: false,
  ws: null, wsRetry: 0, wsTimer: null, signedOut: true, unread: new Set(), pendingClicks: new Map(), working: null,
};

class ApiError extends Error {
  constructor(message, status, details) { super(message); this.status = status; this.details = details; }
}

async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') headers['x-sentchat'] = '1';
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError('SENTreflex cannot be reached. Check the server is running.', 0);
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(err.message || ('The server answered ' + res.status + '.'), res.status, err.details);
  }
  return data;
}

// ---- rich text: elements only, never HTML strings ----
const INLINE = new RegExp(
  '(' + TICK + '[^' + TICK + '\\n]+' + TICK + ')' +
  '|((?<![A-Za-z0-9*])\\*[^*\\n]+\\*(?![A-Za-z0-9*]))' +
  '|((?<![A-Za-z0-9_])_[^_\\n]+_(?![A-Za-z0-9_]))' +
  '|(:[a-z0-9_+-]+:)' +
  '|(https?:\\/\\/[^\\s<>"' + "'" + ')\\]]+)', 'g');

function appendInline(parent, text) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    const t = m[0];
    if (m[1]) parent.append(el('code', '', t.slice(1, -1)));
    else if (m[2]) parent.append(el('strong', '', t.slice(1, -1)));
    else if (m[3]) parent.append(el('em', '', t.slice(1, -1)));
    else if (m[4]) parent.append(document.createTextNode(EMOJI[t.slice(1, -1)] || t));
    else if (m[5]) {
      let url = null;
      try { url = new URL(t); } catch { url = null; }
      if (url && (url.protocol === 'http:' || url.protocol === 'https:')) {
        const a = el('a', '', t);
        a.href = url.href; a.target = '_blank'; a.rel = 'noopener noreferrer';
        parent.append(a);
      } else parent.append(document.createTextNode(t));
    }
    last = m.index + t.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

function rich(text, cls) {
  const box = el('div', cls || 'text');
  const fence = TICK + TICK + TICK;
  const parts = String(text || '').split(fence);
  parts.forEach((part, i) => {
    if (i % 2 === 1 && i < parts.length - 1) box.append(el('pre', '', part.replace(/^\n/, '')));
    else appendInline(box, i % 2 === 1 ? fence + part : part);
  });
  return box;
}

// ---- screens ----
function show(which) {
  for (const id of ['signin', 'denied', 'chat']) $(id).hidden = id !== which;
  document.body.dataset.screen = which;
}

function showSignin(message) {
  state.signedOut = true;
  closeSocket();
  show('signin');
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('token').value = '';
  setTimeout(() => $('token').focus(), 0);
}

function showDenied(me) {
  state.signedOut = true;
  closeSocket();
  show('denied');
  $('denied-identity').textContent = me.identity;
  $('denied-hint').textContent = me.hint || '';
}

async function boot() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const ssoError = hash.get('signin-error');
  if (ssoError) history.replaceState(null, '', location.pathname);
  try {
    const cfg = await api('GET', '/sentchat/api/config');
    $('sso').hidden = !cfg.signIn.oidc;
    $('token-hint').textContent = cfg.signIn.apiToken
      ? 'Paste the API token SENTreflex printed when it started, or your personal token (rpt_…).'
      : 'Paste your personal token (rpt_…), or use single sign-on.';
  } catch { /* the sign-in form still works */ }
  if (ssoError) return showSignin(ssoError);
  try {
    const me = await api('GET', '/sentchat/api/me');
    return enter(me);
  } catch (e) {
    return showSignin(e.status === 401 ? '' : e.message);
  }
}

async function enter(me) {
  state.me = me;
  if (!me.authorised) return showDenied(me);
  state.signedOut = false;
  $('me-name').textContent = me.displayName;
  $('me-tenant').textContent = me.identity + ' · ' + me.tenant + ' · ' + me.roles.join(', ');
  show('chat');
  await loadChannels();
  const saved = localStorage.getItem('sentchat.channel');
  const first = [...state.channels.values()].find((c) => c.name === 'general') || state.channels.values().next().value;
  const pick = saved && state.channels.has(saved) ? saved : first ? first.id : null;
  if (pick) await selectChannel(pick);
  else renderEmptyChannel();
  connect();
}

// ---- channels ----
async function loadChannels() {
  const data = await api('GET', '/sentchat/api/channels');
  state.channels = new Map(data.channels.map((c) => [c.id, c]));
  renderChannels();
}

function channelLabel(c) { return c.kind === 'dm' ? 'SENTreflex' : c.name; }
function channelIcon(c) { return c.kind === 'dm' ? '◆' : c.kind === 'incident' ? '🚨' : c.private ? '🔒' : '#'; }

function renderChannels() {
  const groups = { public: $('list-public'), incident: $('list-incident'), dm: $('list-dm') };
  for (const ul of Object.values(groups)) ul.replaceChildren();
  const sorted = [...state.channels.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const c of sorted) {
    const li = el('li');
    const b = el('button');
    b.type = 'button';
    b.dataset.channel = c.id;
    b.setAttribute('aria-current', String(c.id === state.current));
    if (state.unread.has(c.id)) b.classList.add('unread');
    b.append(el('span', 'kind', channelIcon(c)), el('span', 'name', channelLabel(c)));
    if (state.unread.has(c.id)) b.append(el('span', 'dot'));
    b.addEventListener('click', () => { selectChannel(c.id); closeDrawer(); });
    li.append(b);
    (groups[c.kind] || groups.public).append(li);
  }
  for (const [kind, ul] of Object.entries(groups)) {
    if (ul.children.length === 0) ul.append(el('li', 'empty', kind === 'incident' ? 'No incident rooms. A SEV1 gets one.' : kind === 'dm' ? 'Approval requests for you land here.' : 'No channels yet.'));
  }
}

function renderEmptyChannel() {
  $('channel-name').textContent = 'No channel';
  $('channel-topic').textContent = '';
  const box = $('messages');
  box.replaceChildren(emptyState('💬', 'No channels yet', 'Channels appear here as SENTreflex creates them.'));
  $('input').disabled = true;
  $('send').disabled = true;
}

function emptyState(icon, title, text) {
  const d = el('div', 'empty-state');
  d.append(el('div', 'big', icon), el('strong', '', title));
  d.append(rich(text, 'text'));
  return d;
}

async function selectChannel(id) {
  const c = state.channels.get(id);
  if (!c) return;
  state.current = id;
  state.unread.delete(id);
  localStorage.setItem('sentchat.channel', id);
  $('channel-name').textContent = (c.kind === 'dm' ? '◆ ' : c.kind === 'incident' ? '🚨 ' : '# ') + channelLabel(c);
  $('channel-topic').textContent = c.kind === 'dm' ? 'Your direct messages with SENTreflex: approvals and notices for you.' : c.topic || '';
  $('input').disabled = false;
  $('send').disabled = false;
  $('input').placeholder = 'Message ' + (c.kind === 'dm' ? 'SENTreflex' : '#' + c.name);
  renderChannels();
  hideBanner();
  setWorking(false);
  state.messages = new Map();
  $('messages').replaceChildren();
  try {
    const data = await api('GET', '/sentchat/api/channels/' + encodeURIComponent(id) + '/messages?limit=50');
    if (state.current !== id) return;
    state.hasMore = data.hasMore;
    for (const m of data.messages) state.messages.set(m.id, m);
    renderMessages(true);
  } catch (e) {
    handleError(e);
  }
}

async function loadOlder() {
  const first = [...state.messages.values()].sort(bySeq)[0];
  if (!first) return;
  const id = state.current;
  try {
    const data = await api('GET', '/sentchat/api/channels/' + encodeURIComponent(id) + '/messages?limit=50&before=' + encodeURIComponent(first.seq));
    if (state.current !== id) return;
    state.hasMore = data.hasMore;
    const box = $('messages');
    const before = box.scrollHeight - box.scrollTop;
    for (const m of data.messages) state.messages.set(m.id, m);
    renderMessages(false);
    box.scrollTop = box.scrollHeight - before;
  } catch (e) { handleError(e); }
}

// ---- messages ----
function bySeq(a, b) { return Number(a.seq) - Number(b.seq); }

function timeOf(iso) {
  const d = new Date(iso);
  const t = el('time', '', '');
  t.dateTime = iso;
  t.title = d.toLocaleString();
  const today = new Date().toDateString() === d.toDateString();
  t.textContent = (today ? '' : d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ') + d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return t;
}

function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/);
  return ((parts[0] || '?')[0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

function isCard(card) {
  return card && (card.title || (card.fields && card.fields.length) || (card.buttons && card.buttons.length) || (card.context && card.context.length));
}

function renderCard(m) {
  const card = m.card;
  const box = el('div', 'card');
  if (/\bSEV1\b/.test((card.title || '') + ' ' + (card.text || ''))) box.classList.add('danger');
  if (card.title) box.append(rich(card.title, 'title'));
  if (card.text) box.append(rich(card.text));
  if (card.fields && card.fields.length) {
    const dl = el('dl', 'fields');
    for (const f of card.fields) {
      const d = el('div');
      const dd = el('dd');
      appendInline(dd, f.value);
      d.append(el('dt', '', f.label), dd);
      dl.append(d);
    }
    box.append(dl);
  }
  if (card.buttons && card.buttons.length) {
    const row = el('div', 'buttons');
    for (const b of card.buttons) {
      const btn = el('button', b.style === 'primary' ? 'primary' : b.style === 'danger' ? 'danger' : 'secondary', b.label);
      btn.type = 'button';
      btn.dataset.action = b.actionId;
      btn.addEventListener('click', () => click(m, b, btn, row));
      row.append(btn);
    }
    if (state.pendingClicks.has(m.id)) for (const x of row.children) x.disabled = true;
    box.append(row);
  }
  if (card.context && card.context.length) {
    const ctx = el('div', 'context');
    for (const line of card.context) ctx.append(rich(line, ''));
    box.append(ctx);
  }
  return box;
}

function renderMessage(m) {
  const bot = m.author.kind === 'bot';
  const a = el('article', 'msg' + (m.threadParentId ? ' reply' : '') + (m.ephemeral ? ' ephemeral' : ''));
  a.dataset.id = m.id;
  a.append(el('div', 'avatar' + (bot ? ' bot' : ''), bot ? '◆' : initials(m.author.name)));
  const body = el('div', 'body');
  const meta = el('div', 'meta');
  meta.append(el('span', 'author', m.author.name));
  if (bot) meta.append(el('span', 'badge', 'bot'));
  meta.append(timeOf(m.createdAt));
  if (m.version > 1 && m.updatedAt !== m.createdAt) meta.append(el('span', 'note', 'updated'));
  if (m.pinned) meta.append(el('span', 'note', '📌 pinned'));
  if (m.ephemeral) meta.append(el('span', 'note', 'Only visible to you'));
  body.append(meta);
  if (m.threadParentId) {
    const parent = state.messages.get(m.threadParentId);
    const about = parent ? (parent.card && parent.card.title) || parent.text : 'an earlier message';
    body.append(el('div', 'replyto', '↳ in reply to ' + String(about).split('\n')[0].slice(0, 80)));
  }
  if (isCard(m.card)) body.append(renderCard(m));
  else body.append(rich(m.text));
  a.append(body);
  return a;
}

function nearBottom() {
  const box = $('messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function renderMessages(scrollToEnd) {
  const box = $('messages');
  box.replaceChildren();
  if (state.hasMore) {
    const wrap = el('div', 'older');
    const b = el('button', 'secondary', 'Load earlier messages');
    b.type = 'button';
    b.addEventListener('click', loadOlder);
    wrap.append(b);
    box.append(wrap);
  }
  const list = [...state.messages.values()].sort(bySeq);
  if (list.length === 0) {
    const c = state.channels.get(state.current);
    box.append(emptyState('💬', 'No messages in ' + (c ? (c.kind === 'dm' ? 'your direct messages' : '#' + c.name) : 'this channel') + ' yet',
      'Say hello, or type ' + TICK + '/reflex help' + TICK + ' to see what SENTreflex can do for you.'));
  }
  for (const m of list) box.append(renderMessage(m));
  if (state.working) box.append(workingLine());
  if (scrollToEnd) box.scrollTop = box.scrollHeight;
}

function workingLine() { return el('div', 'working', 'SENTreflex is working on it'); }

function setWorking(on) {
  clearTimeout(state.workingTimer);
  state.working = on ? state.current : null;
  const old = $('messages').querySelector('.working');
  if (old) old.remove();
  if (on) {
    $('messages').append(workingLine());
    $('messages').scrollTop = $('messages').scrollHeight;
    state.workingTimer = setTimeout(() => setWorking(false), 20000);
  }
}

function upsertMessage(m, flash) {
  if (m.channelId !== state.current) return;
  const stick = nearBottom();
  const existed = state.messages.has(m.id);
  state.messages.set(m.id, m);
  const box = $('messages');
  const node = box.querySelector('article[data-id="' + CSS.escape(m.id) + '"]');
  if (existed && node) {
    const fresh = renderMessage(m);
    if (flash) fresh.classList.add('flash');
    node.replaceWith(fresh);
    return;
  }
  renderMessages(false);
  if (stick || (m.author.kind === 'user' && state.me && m.author.name === state.me.displayName)) box.scrollTop = box.scrollHeight;
}

// ---- posting and clicking ----
async function send(ev) {
  ev.preventDefault();
  const input = $('input');
  const text = input.value.trim();
  if (!text || !state.current) return;
  $('send').disabled = true;
  try {
    const res = await api('POST', '/sentchat/api/channels/' + encodeURIComponent(state.current) + '/messages', { text });
    input.value = '';
    autosize();
    upsertMessage(res.message, false);
    if (res.command) setWorking(true);
    hideBanner();
  } catch (e) {
    handleError(e);
  } finally {
    $('send').disabled = false;
    input.focus();
  }
}

async function click(m, button, btn, row) {
  for (const x of row.children) x.disabled = true;
  const label = btn.textContent;
  btn.textContent = label + ' …';
  const release = () => {
    state.pendingClicks.delete(m.id);
    for (const x of row.children) x.disabled = false;
    btn.textContent = label;
  };
  state.pendingClicks.set(m.id, setTimeout(release, 15000));
  try {
    await api('POST', '/sentchat/api/actions', { messageId: m.id, actionId: button.actionId, value: button.value });
  } catch (e) {
    clearTimeout(state.pendingClicks.get(m.id));
    release();
    handleError(e);
  }
}

function settleClick(messageId) {
  const t = state.pendingClicks.get(messageId);
  if (t === undefined) return;
  clearTimeout(t);
  state.pendingClicks.delete(messageId);
  const node = $('messages').querySelector('article[data-id="' + CSS.escape(messageId) + '"]');
  const m = state.messages.get(messageId);
  if (node && m) node.replaceWith(renderMessage(m));
}

// ---- errors ----
function showBanner(text) {
  const b = $('banner');
  b.replaceChildren(el('span', '', text));
  const x = el('button', '', '×');
  x.type = 'button';
  x.setAttribute('aria-label', 'Dismiss');
  x.addEventListener('click', hideBanner);
  b.append(x);
  b.hidden = false;
}
function hideBanner() { $('banner').hidden = true; }

function handleError(e) {
  if (e.status === 401) return showSignin('Your session ended. Sign in again.');
  if (e.status === 403 && e.details && e.details.identity) return enter({ ...state.me, authorised: false, identity: e.details.identity, hint: e.details.hint });
  showBanner(e.message);
}

// ---- live updates ----
function setConn(text, live) {
  const c = $('conn');
  c.textContent = text;
  c.classList.toggle('live', !!live);
}

function closeSocket() {
  clearTimeout(state.wsTimer);
  if (state.ws) {
    const ws = state.ws;
    state.ws = null;
    ws.onclose = null;
    ws.close();
  }
}

function connect() {
  closeSocket();
  if (state.signedOut) return;
  const reconnecting = state.wsRetry > 0;
  setConn(reconnecting ? 'Reconnecting…' : 'Connecting…', false);
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/sentchat/ws');
  state.ws = ws;
  ws.onopen = () => {
    setConn('Live', true);
    if (state.wsRetry > 0) resync();
    state.wsRetry = 0;
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    onLive(msg);
  };
  ws.onclose = async (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (ev.code === 4401) return showSignin('Your session ended. Sign in again.');
    if (ev.code === 4403) {
      try { return enter(await api('GET', '/sentchat/api/me')); } catch (e) { return handleError(e); }
    }
    state.wsRetry += 1;
    setConn('Disconnected — reconnecting…', false);
    const delay = Math.min(15000, 500 * 2 ** Math.min(state.wsRetry, 5));
    state.wsTimer = setTimeout(async () => {
      try {
        const me = await api('GET', '/sentchat/api/me');
        if (!me.authorised) return showDenied(me);
      } catch (e) {
        if (e.status === 401) return showSignin('Your session ended. Sign in again.');
      }
      connect();
    }, delay);
  };
}

async function resync() {
  try {
    await loadChannels();
    if (state.current && state.channels.has(state.current)) await selectChannel(state.current);
  } catch (e) { handleError(e); }
}

function onLive(msg) {
  switch (msg.type) {
    case 'message.new': {
      const m = msg.message;
      if (m.author.kind === 'bot' && m.channelId === state.current && state.working) setWorking(false);
      if (m.threadParentId) settleClick(m.threadParentId);
      if (m.channelId === state.current) upsertMessage(m, false);
      else if (state.channels.has(m.channelId)) { state.unread.add(m.channelId); renderChannels(); }
      break;
    }
    case 'message.updated': {
      const m = msg.message;
      state.pendingClicks.has(m.id) && clearTimeout(state.pendingClicks.get(m.id));
      state.pendingClicks.delete(m.id);
      upsertMessage(m, true);
      break;
    }
    case 'channel.new':
    case 'channel.updated': {
      const c = msg.channel;
      state.channels.set(c.id, c);
      renderChannels();
      if (c.id === state.current) $('channel-topic').textContent = c.kind === 'dm' ? $('channel-topic').textContent : c.topic || '';
      break;
    }
    case 'resync':
      resync();
      break;
    default:
      break;
  }
}

// ---- drawer (narrow screens) ----
function openDrawer() { $('sidebar').classList.add('open'); $('scrim').hidden = false; $('menu').setAttribute('aria-expanded', 'true'); }
function closeDrawer() { $('sidebar').classList.remove('open'); $('scrim').hidden = true; $('menu').setAttribute('aria-expanded', 'false'); }

function autosize() {
  const t = $('input');
  t.style.height = 'auto';
  t.style.height = Math.min(t.scrollHeight, 180) + 'px';
}

// ---- wiring ----
$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = $('token').value.trim();
  const err = $('signin-error');
  if (!token) { err.textContent = 'Paste a token first.'; err.hidden = false; return; }
  $('signin-button').disabled = true;
  err.hidden = true;
  try {
    const res = await api('POST', '/sentchat/api/session', { token });
    $('token').value = '';
    await enter(res.me);
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  } finally {
    $('signin-button').disabled = false;
  }
});

async function signOut() {
  state.signedOut = true;
  closeSocket();
  try { await api('DELETE', '/sentchat/api/session'); } catch { /* signed out locally anyway */ }
  state.me = null;
  state.current = null;
  showSignin('');
}
$('signout').addEventListener('click', signOut);
$('denied-signout').addEventListener('click', signOut);
$('composer').addEventListener('submit', send);
$('input').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $('composer').requestSubmit(); }
});
$('input').addEventListener('input', autosize);
$('menu').addEventListener('click', () => ($('sidebar').classList.contains('open') ? closeDrawer() : openDrawer()));
$('scrim').addEventListener('click', closeDrawer);
// Stay at the newest message when the screen turns or the keyboard opens, if that is where the reader was.
let stick = true;
$('messages').addEventListener('scroll', () => { stick = nearBottom(); });
window.addEventListener('resize', () => { if (stick) $('messages').scrollTop = $('messages').scrollHeight; });

boot();
`;
