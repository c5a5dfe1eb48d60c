// Mayfly web page: one disposable inbox at a time, live over a WebSocket.
// No framework; message data is only ever inserted as text (textContent / attributes).

import { catalogue, names } from './i18n.js';

const KEY = 'mayfly.inboxes';
const CUR = 'mayfly.current';
const NOTIFY = 'mayfly.notify';
const LANG = 'mayfly.lang';
const $ = (id) => document.getElementById(id);

let inboxes = loadInboxes();
let current = null;       // {address, token, expires_in, ttl}
let msgs = new Map();     // id -> summary of the current inbox
const readHere = new Set(); // ids opened in this page
let openId = null;
let ws = null;
let backoff = 500;
let retryTimer = 0;
let listSeq = 0;
let pushed = new Set(); // ids the WebSocket brought while a listing was under way
let service = { domains: [], mail_clients: [] }; // GET /api/v1/service
let showImages = false; // for the open message only: tracking pixels stay blocked by default
let query = '';          // the search box, lowercased
const texts = new Map(); // id -> text of messages opened in this page, for the search
let selectedId = null;   // the list's keyboard cursor (j/k)
let tokenShown = false;  // the token is masked until asked for
const deletedHere = new Set(); // ids this page deletes: their deleted events move nothing

// ---- storage ------------------------------------------------------------

function loadInboxes() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY));
    return Array.isArray(v) ? v.filter((i) => i && typeof i.address === 'string' && typeof i.token === 'string') : [];
  } catch {
    return [];
  }
}

function save() {
  try {
    localStorage.setItem(KEY, JSON.stringify(inboxes));
    if (current) localStorage.setItem(CUR, current.address);
    else localStorage.removeItem(CUR);
  } catch { /* private mode: keep working in memory */ }
}

// ---- languages ----------------------------------------------------------

// pickLang is the saved choice, else the first of the browser's languages we have.
function pickLang() {
  let saved = null;
  try { saved = localStorage.getItem(LANG); } catch { /* storage unavailable */ }
  if (saved && catalogue[saved]) return saved;
  for (const l of navigator.languages || [navigator.language || 'en']) {
    const low = String(l).toLowerCase();
    if (low.startsWith('zh')) return 'zh-CN'; // Traditional readers read these too, better than English
    const base = low.split('-')[0];
    if (catalogue[base]) return base;
  }
  return 'en';
}

let lang = pickLang();

function t(key, vars = {}) {
  const c = catalogue[lang] || catalogue.en;
  let k = key;
  if (typeof vars.n === 'number') {
    const form = `${key}.${new Intl.PluralRules(lang).select(vars.n)}`;
    k = form in c || form in catalogue.en ? form : `${key}.other`;
  }
  const s = c[k] ?? catalogue.en[k] ?? c[key] ?? catalogue.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, v) => (v in vars ? String(vars[v]) : `{${v}}`));
}

// applyLang writes the catalogue's strings into the page's static text.
function applyLang() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll('[data-i18n-label]')) e.setAttribute('aria-label', t(e.dataset.i18nLabel));
  for (const e of document.querySelectorAll('[data-i18n-placeholder]')) e.setAttribute('placeholder', t(e.dataset.i18nPlaceholder));
  for (const e of document.querySelectorAll('[data-i18n-alt]')) e.setAttribute('alt', t(e.dataset.i18nAlt));
}

function setLang(l) {
  lang = l;
  try { localStorage.setItem(LANG, l); } catch { /* in memory only */ }
  applyLang();
  if (current) describeInbox(current);
  renderList();
  if (openMsg) renderMessage(current, openMsg);
  if (openMsg && !$('panel-report').hidden) openReport().catch(showError);
  setConn(connState);
}

// ---- helpers ------------------------------------------------------------

const base = (inbox) => `/api/v1/inboxes/${encodeURIComponent(inbox.address)}`;
const withToken = (inbox, path) => `${base(inbox)}${path}?token=${encodeURIComponent(inbox.token)}`;

async function api(inbox, path, opts = {}) {
  const headers = inbox ? { Authorization: `Bearer ${inbox.token}` } : {};
  if (opts.contentType) headers['Content-Type'] = opts.contentType;
  const res = await fetch(inbox ? base(inbox) + path : path, { ...opts, headers });
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try { msg = (await res.json()).error.message || msg; } catch { /* not JSON */ }
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return res.status === 204 ? null : res.json();
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function announce(text) {
  const live = $('live');
  live.textContent = '';
  setTimeout(() => { live.textContent = text; }, 50);
}

function showError(err) {
  const box = $('error');
  box.textContent = err ? String(err.message || err) : '';
  box.hidden = !err;
}

function duration(s) {
  if (!Number.isFinite(s) || s <= 0) return '';
  const units = [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  const fmt = (n, unit) => new Intl.NumberFormat(lang, { style: 'unit', unit, unitDisplay: 'long' }).format(n);
  for (const [n, name] of units) {
    if (s >= n && s % n === 0) return fmt(s / n, name);
  }
  return fmt(Math.round(s / 60), 'minute');
}

function ago(iso) {
  const ts = Date.parse(iso);
  if (!ts) return '';
  const s = Math.round((Date.now() - ts) / 1000);
  if (s < 45) return t('just.now');
  const rtf = new Intl.RelativeTimeFormat(lang, { numeric: 'auto', style: 'short' });
  if (s < 3600) return rtf.format(-Math.round(s / 60), 'minute');
  if (s < 86400) return rtf.format(-Math.round(s / 3600), 'hour');
  return new Date(ts).toLocaleDateString(lang);
}

function badge(label, v) {
  const cls = v === 'pass' ? 'pass' : v === 'fail' ? 'fail' : 'other';
  return el('span', { class: `badge ${cls}`, text: label ? `${label} ${v}` : v });
}

function badges(auth) {
  const box = el('span', { class: 'badges' });
  for (const k of ['spf', 'dkim', 'dmarc']) box.append(badge(k.toUpperCase(), (auth && auth[k]) || 'none'));
  return box;
}

async function copyText(text, button) {
  const focus = document.activeElement;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = el('textarea', { readonly: '', class: 'offscreen' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    try { document.execCommand('copy'); } catch { /* nothing more to try */ }
    ta.remove();
    if (focus && focus.focus) focus.focus();
  }
  announce(t('copied'));
  if (button) {
    const label = button.textContent;
    button.textContent = t('copied');
    setTimeout(() => { button.textContent = label; }, 1500);
  }
}

// ---- inboxes ------------------------------------------------------------

async function createInbox(body) {
  const domain = $('domain').value;
  if (!body && domain && domain !== service.domains[0]) body = { domain };
  const r = await api(null, '/api/v1/inboxes', body
    ? { method: 'POST', body: JSON.stringify(body), contentType: 'application/json' }
    : { method: 'POST' });
  const inbox = { address: r.address, token: r.token, expires_in: r.expires_in, ttl: r.ttl };
  inboxes = inboxes.filter((i) => i.address !== inbox.address);
  inboxes.unshift(inbox);
  select(inbox);
}

function select(inbox) {
  current = inbox;
  save();
  msgs = new Map();
  readHere.clear();
  closeMessage(false);
  $('address').textContent = inbox.address;
  if (!performance.getEntriesByName('mayfly:address').length) performance.mark('mayfly:address'); // first screen usable
  texts.clear();
  deletedHere.clear();
  selectedId = null;
  tokenShown = false;
  $('qr').hidden = true;
  describeInbox(inbox);
  loadInbox(inbox);
  $('client-user').textContent = inbox.address;
  $('client-pass').textContent = inbox.token;
  renderInboxes();
  renderList();
  showError(null);
  list();
  connect();
  if ($('others').open) countOthers();
}

// describeInbox writes what the page says of the inbox: its lifetime, how to use it.
function describeInbox(inbox) {
  $('ttl').textContent = inbox.expires_in ? t('ttl', { d: duration(inbox.expires_in) }) : '';
  $('welcome-address').textContent = inbox.address;
  $('welcome-ttl').textContent = $('ttl').textContent;
  $('api-example').textContent = apiExample(inbox);
  $('token').textContent = tokenShown ? inbox.token : '•'.repeat(12);
  $('token-show').textContent = t(tokenShown ? 'token.hide' : 'token.show');
  $('token-show').setAttribute('aria-pressed', String(tokenShown));
  $('share-link').value = shareLink(inbox);
  $('burn').checked = !!inbox.burn;
  fillTTLs(inbox);
  if ($('keep').open) drawQR(inbox);
}

// shareLink opens the inbox in another browser. The token rides in the fragment, which
// browsers keep to themselves: it reaches no server log, not even ours.
function shareLink(inbox) {
  const p = new URLSearchParams({ inbox: inbox.address, token: inbox.token });
  return `${location.origin}${location.pathname}#${p}`;
}

// The QR encoder is loaded only when a code is shown: first render stays small.
async function drawQR(inbox) {
  const { qrcode } = await import('./qrcode.js');
  if (inbox !== current) return;
  const q = qrcode(0, 'M');
  q.addData(shareLink(inbox));
  q.make();
  const cell = 4;
  const size = (q.getModuleCount() + 8) * cell;
  $('qr').src = q.createDataURL(cell, 4 * cell);
  $('qr').width = size;
  $('qr').height = size;
  $('qr').hidden = false;
}

const TTLS = [3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400];

function fillTTLs(inbox) {
  const max = service.max_ttl || 86400;
  const now = inbox.expires_in || 0;
  const choices = [...new Set([...TTLS.filter((s) => s <= max), max, now].filter((s) => s > 0))].sort((a, b) => a - b);
  $('ttl-pick').replaceChildren(...choices.map((s) => el('option', { value: String(s), text: duration(s) })));
  if (now) $('ttl-pick').value = String(now);
}

// patchInbox changes the inbox's settings on the server and shows what it answered.
async function patchInbox(change) {
  const inbox = current;
  const r = await api(inbox, '', { method: 'PATCH', body: JSON.stringify(change), contentType: 'application/json' });
  if (r.expires_in) inbox.expires_in = r.expires_in;
  if (r.ttl) inbox.ttl = r.ttl;
  inbox.burn = !!r.burn_after_read;
  save();
  if (inbox === current) describeInbox(inbox);
  return r;
}

// fromLink takes an inbox from a share link's fragment, then drops the fragment from
// the address bar so the token is not left on screen or in the history.
function fromLink() {
  const p = new URLSearchParams(location.hash.slice(1));
  const address = p.get('inbox');
  const token = p.get('token');
  if (!address || !token) return null;
  history.replaceState(history.state, '', location.pathname + location.search);
  return remember({ address, token });
}

function remember(inbox) {
  const known = inboxes.find((i) => i.address === inbox.address);
  if (known) { known.token = inbox.token; return known; }
  inboxes.unshift(inbox);
  save();
  return inbox;
}

function apiExample(inbox) {
  const url = `${location.origin}/api/v1/inboxes/${inbox.address}`;
  // The token stays masked here too until "Show" is pressed.
  return `# ${t('welcome.api.example')}\n` +
    `curl -s -H "Authorization: Bearer ${tokenShown ? inbox.token : '$TOKEN'}" \\\n  "${url}/wait?timeout=60s" | jq -r '.messages[0].codes[0]'`;
}

// loadInbox reads the inbox's settings: burn-after-read changes how a message is opened.
async function loadInbox(inbox) {
  try {
    const r = await api(inbox, '');
    inbox.burn = !!r.burn_after_read;
    if (r.expires_in) inbox.expires_in = r.expires_in;
    if (inbox === current) describeInbox(inbox);
  } catch { /* an older server: no burn-after-read */ }
}

function forget(inbox) {
  if (!confirm(t('forget.ask', { address: inbox.address }))) return;
  inboxes = inboxes.filter((i) => i !== inbox);
  if (inbox === current) {
    current = null;
    save();
    if (inboxes.length) select(inboxes[0]);
    else createInbox().catch(showError);
  } else {
    save();
    renderInboxes();
  }
  announce(t('forget.done', { address: inbox.address }));
}

function renderInboxes() {
  const ul = $('inboxes');
  ul.replaceChildren(...inboxes.map((inbox) => {
    const isCur = inbox === current;
    const pick = el('button', { type: 'button', class: 'link', text: inbox.address, onclick: () => select(inbox) });
    if (isCur) pick.setAttribute('aria-current', 'true');
    const n = isCur ? unreadCount() : inbox.unread || 0;
    if (n) pick.append(' ', el('span', { class: 'count', text: String(n), 'aria-label': t('unread.label', { n }) }));
    const drop = el('button', { type: 'button', class: 'small', text: t('forget'), 'aria-label': t('forget.label', { address: inbox.address }), onclick: () => forget(inbox) });
    return el('li', isCur ? { class: 'current' } : {}, pick, drop);
  }));
}

// countOthers asks the server how much unread mail each other inbox of this browser
// holds, for the badges of the inbox list.
async function countOthers() {
  let changed = false;
  await Promise.all(inboxes.filter((i) => i !== current).map(async (inbox) => {
    let n = 0;
    try { n = (await api(inbox, '')).unread || 0; } catch { /* shown without a count */ }
    if (n !== (inbox.unread || 0)) changed = true;
    inbox.unread = n;
  }));
  if (changed) renderInboxes();
}

// ---- message list -------------------------------------------------------

async function list() {
  const inbox = current;
  const seq = ++listSeq;
  pushed = new Set();
  try {
    const r = await api(inbox, '/messages');
    if (inbox !== current || seq !== listSeq) return;
    const next = new Map(r.messages.map((m) => [m.id, m]));
    for (const id of pushed) if (msgs.has(id) && !next.has(id)) next.set(id, msgs.get(id)); // arrived meanwhile
    msgs = next;
    renderList();
    showError(null);
    return true;
  } catch (err) {
    if (inbox === current) showError(err);
    return !(err.status >= 400 && err.status < 500); // 4xx: the token no longer opens it
  }
}

function matches(m) {
  if (!query) return true;
  const hay = [m.from, m.subject, ...(m.to || []), texts.get(m.id) || ''].join('\n').toLowerCase();
  return query.split(/\s+/).every((w) => hay.includes(w));
}

function refilter() {
  for (const li of $('messages').children) {
    const m = msgs.get(li.querySelector('[data-id]')?.dataset.id);
    li.hidden = !!m && !matches(m);
  }
  updateCounts();
}

// readTexts reads, one at a time, the text of the messages the search has not seen yet,
// so it finds words in bodies too; at most SEARCH_READS an inbox. Not in a
// burn-after-read inbox, where a read deletes the message.
const SEARCH_READS = 200;
let reading = null;
async function readTexts(inbox) {
  if (inbox.burn || reading === inbox) return;
  reading = inbox;
  try {
    const ids = [...msgs.keys()].filter((id) => !texts.has(id)).slice(0, SEARCH_READS);
    for (const id of ids) {
      if (inbox !== current || !query || inbox.burn) break;
      let text = '';
      try {
        const m = await api(inbox, `/messages/${encodeURIComponent(id)}`);
        // An inert document (DOMParser runs no script, loads nothing) gives the HTML's words.
        text = `${m.text || ''}\n${m.html ? new DOMParser().parseFromString(m.html, 'text/html').body?.textContent || '' : ''}`;
      } catch { /* gone meanwhile, or refused: not searchable */ }
      if (inbox !== current) break;
      texts.set(id, text);
      refilter();
    }
  } finally {
    if (reading === inbox) reading = null;
  }
}

function itemFor(m) {
  const unread = !m.seen && !readHere.has(m.id);
  const time = el('time', { datetime: m.received_at, 'data-ts': m.received_at, text: ago(m.received_at) });
  const btn = el('button', { type: 'button', class: 'msg', 'data-id': m.id, onclick: () => openMessage(m.id) },
    el('span', { class: 'line' },
      el('span', { class: 'from' }, el('span', { class: 'dot', 'aria-hidden': 'true' }),
        m.sent ? t('sent.to', { to: (m.to || []).join(', ') }) : m.from || t('no.sender')), time),
    el('span', { class: 'subject', text: m.subject || t('no.subject') }),
    m.sent ? el('span', { class: 'badges' }, el('span', { class: 'badge other', text: t('sent') })) : badges(m.auth));
  if (unread) btn.prepend(el('span', { class: 'visually-hidden', text: t('unread') }));
  if (m.id === selectedId) btn.classList.add('selected');
  const li = el('li', { class: [unread ? 'unread' : '', m.id === openId ? 'open' : ''].join(' ').trim() }, btn);
  li.hidden = !matches(m);
  return li;
}

function renderList() {
  const ol = $('messages');
  const focused = document.activeElement && ol.contains(document.activeElement)
    ? document.activeElement.closest('[data-id]')?.dataset.id : null;
  const sorted = [...msgs.values()].sort((a, b) => b.uid - a.uid);
  ol.replaceChildren(...sorted.map(itemFor));
  if (focused) ol.querySelector(`[data-id="${CSS.escape(focused)}"]`)?.focus();
  updateCounts();
}

// visibleIds is the list as shown: newest first, the search applied.
function visibleIds() {
  return [...$('messages').querySelectorAll('li:not([hidden]) [data-id]')].map((b) => b.dataset.id);
}

function updateCounts() {
  $('empty').hidden = msgs.size > 0;
  $('delete-all').hidden = msgs.size === 0;
  $('no-match').hidden = !msgs.size || !query || visibleIds().length > 0;
  updateTitle();
  updateNav();
}

function unreadCount() {
  let n = 0;
  for (const m of msgs.values()) if (!m.seen && !readHere.has(m.id)) n++;
  return n;
}

function updateTitle() {
  const n = unreadCount();
  document.title = n ? `(${n}) Mayfly` : 'Mayfly';
  $('unread').textContent = String(n);
  $('unread').hidden = !n;
  $('unread').setAttribute('aria-label', t('unread.label', { n }));
  const mine = $('inboxes').querySelector('li.current .count');
  if ((mine ? Number(mine.textContent) : 0) !== n) renderInboxes();
}

function removeMessage(id) {
  msgs.delete(id);
  $('messages').querySelector(`[data-id="${CSS.escape(id)}"]`)?.closest('li')?.remove();
  // In a burn-after-read inbox reading the message deletes it: it stays open until closed.
  if (openId === id && !current?.burn && !deletedHere.has(id)) closeMessage(true);
  updateCounts();
}

// ---- live updates -------------------------------------------------------

let connState = 'connecting';
function setConn(state) { connState = state; $('conn').textContent = t(`conn.${state}`); }

function connect() {
  clearTimeout(retryTimer);
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  const inbox = current;
  if (!inbox) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const sock = new WebSocket(`${proto}//${location.host}${withToken(inbox, '/ws')}`);
  ws = sock;
  let opened = false;
  sock.onopen = () => { opened = true; backoff = 500; setConn('live'); list(); };
  sock.onmessage = (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    if (ev.type === 'message' && ev.message) {
      const m = ev.message;
      const had = msgs.has(m.id);
      msgs.set(m.id, m);
      pushed.add(m.id);
      if (had) { renderList(); return; }
      const ol = $('messages');
      const older = [...ol.querySelectorAll('[data-id]')].find((b) => (msgs.get(b.dataset.id)?.uid ?? 0) < m.uid);
      ol.insertBefore(itemFor(m), older ? older.closest('li') : null);
      updateCounts();
      announce(t('new.mail.announce', { subject: m.subject || t('no.subject') }));
      notify(m);
    } else if (ev.type === 'deleted' && ev.id) {
      removeMessage(ev.id);
    } else if (ev.type === 'flags' && msgs.has(ev.id)) {
      msgs.get(ev.id).seen = !!ev.seen;
      renderList();
    }
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    setConn('reconnecting');
    if (!opened) {
      // Refused before opening: ask the API why, and give up on a token it rejects.
      list().then((ok) => {
        if (ok || inbox !== current) return;
        clearTimeout(retryTimer);
        if (ws) { ws.onclose = null; ws.close(); ws = null; }
        setConn('offline');
      });
    }
    const delay = Math.min(15000, backoff * (0.75 + Math.random() / 2)); // ±25% jitter
    backoff = Math.min(backoff * 2, 15000);
    retryTimer = setTimeout(connect, delay);
  };
}

// ---- notifications ------------------------------------------------------

function notifyWanted() {
  try { return localStorage.getItem(NOTIFY) === '1'; } catch { return false; }
}

function notify(m) {
  if (!document.hidden || !notifyWanted() || !('Notification' in window) || Notification.permission !== 'granted') return;
  const n = new Notification(m.from || t('new.mail'), { body: m.subject || t('no.subject'), tag: m.id });
  n.onclick = () => { window.focus(); openMessage(m.id); n.close(); };
}

async function setNotify(on) {
  if (on && 'Notification' in window && Notification.permission !== 'granted') {
    on = (await Notification.requestPermission()) === 'granted';
    if (!on) showError(new Error(t('notify.blocked')));
  }
  $('notify').checked = on;
  try { localStorage.setItem(NOTIFY, on ? '1' : '0'); } catch { /* in memory only */ }
}

// ---- service ------------------------------------------------------------

async function loadService() {
  try {
    service = await api(null, '/api/v1/service');
  } catch {
    return; // an older server: one domain, no mail-client panel
  }
  const domains = service.domains || [];
  $('domain').replaceChildren(...domains.map((d) => el('option', { value: d, text: d })));
  $('domain-box').hidden = domains.length < 2;
  $('own-domain').textContent = domains.length ? `@${domains[0]}` : '';
  const clients = service.mail_clients || [];
  $('clients').tBodies[0].replaceChildren(...clients.map((c) => el('tr', {},
    el('th', { scope: 'row', text: c.protocol }), el('td', {}, el('code', { text: c.host })),
    el('td', { text: String(c.port) }), el('td', { text: c.security }))));
  $('client-box').hidden = !clients.length;
  if (current) fillTTLs(current);
}

// ---- one message --------------------------------------------------------

// renderBody shows the HTML body from the html route, whose Content-Security-Policy
// sandboxes it (no origin of its own) and runs no script but the route's own, which
// reports the document's size (frame sizing below). The iframe's own sandbox says the
// same, so neither alone is trusted.
function renderBody(inbox, m) {
  const panel = $('panel-html');
  const remote = m.html ? m.remote_content || 0 : 0;
  $('images-box').hidden = !remote;
  $('images-note').textContent = showImages ? t('images.shown', { n: remote }) : t('images.blocked', { n: remote });
  $('images').setAttribute('aria-pressed', String(showImages));
  $('images').textContent = showImages ? t('images.block') : t('images.show');
  if (!m.html) { panel.replaceChildren(); return; }
  if (m.burnFrame) { $('images-box').hidden = true; return; } // loaded once: a second load finds it burned
  panel.replaceChildren(bodyFrame(inbox, m.id));
}

// bodyFrame returns the frame of a message's HTML in its box, which takes the frame's
// height as scaled. The URL's fragment, never sent, is a key the frame's script repeats
// in its reports, which a document the reader navigated the frame to cannot know.
function bodyFrame(inbox, id) {
  const key = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
  const src = `${withToken(inbox, `/messages/${encodeURIComponent(id)}/html`)}${showImages ? '&images=1' : ''}#${key}`;
  const frame = el('iframe', {
    id: 'body', sandbox: 'allow-scripts allow-popups allow-popups-to-escape-sandbox', src,
    title: t('body.title'), referrerpolicy: 'no-referrer', loading: 'eager',
  });
  frameState.set(frame, { key, height: 0, width: 0, wide: 0 });
  return el('div', { class: 'frame-box' }, frame);
}

// ---- frame sizing -------------------------------------------------------
// The frame's document is an opaque origin, so the page cannot measure it; the html
// route's script reports its height and width instead. The page sizes the frame to
// the height, so the message pane scrolls once, as a whole; a document wider than the
// pane (a 600 px newsletter on a phone) is laid out at its width and scaled down to fit.
const FRAME_MAX_HEIGHT = 50000; // a mail as tall as it likes, a frame no taller than this
const FRAME_MAX_WIDTH = 2000;
const frameState = new WeakMap(); // frame -> { key, height, width, wide } as last reported

addEventListener('message', (e) => {
  const frame = $('body');
  const d = e.data;
  const f = frame && frameState.get(frame);
  // Only the frame's own window, and in it only the document the page loaded.
  if (!f || e.source !== frame.contentWindow || !d || d.type !== 'mayfly-frame-height' || d.key !== f.key) return;
  const height = Number(d.height);
  const width = Number(d.width);
  if (!Number.isFinite(height) || !Number.isFinite(width)) return;
  f.height = Math.min(Math.max(Math.ceil(height), 16), FRAME_MAX_HEIGHT);
  f.width = Math.min(Math.max(Math.ceil(width), 0), FRAME_MAX_WIDTH);
  fitFrame(frame);
});

// fitFrame sizes frame to what it last reported: laid out wider than the pane when its
// document is (the frame then reports again at that width), scaled to the pane's width.
function fitFrame(frame) {
  const f = frameState.get(frame);
  const box = frame.parentElement;
  const room = box ? box.clientWidth : 0;
  if (!f || !f.height || !room) return; // not reported yet, or in a hidden tab
  const laidOut = f.wide || room;
  if (f.width > laidOut + 1) f.wide = Math.min(f.width, FRAME_MAX_WIDTH);
  if (f.wide <= room) f.wide = 0;
  const scale = f.wide ? room / f.wide : 1;
  frame.style.width = f.wide ? `${f.wide}px` : '';
  frame.style.height = `${f.height}px`;
  frame.style.transform = f.wide ? `scale(${scale})` : '';
  box.style.height = `${Math.ceil(f.height * scale)}px`;
}

// When the pane's width changes, the frame is laid out at it again: a document that
// was too wide may fit now, and it reports its size at the new width.
new ResizeObserver(() => {
  const frame = $('body');
  const f = frame && frameState.get(frame);
  if (!f || !frame.parentElement || frame.parentElement.clientWidth === f.room) return;
  f.room = frame.parentElement.clientWidth;
  f.wide = 0;
  f.width = 0; // measured at the old width: the frame reports again at the new one
  fitFrame(frame);
}).observe($('panel-html'));

// burnFrame loads the HTML body before the message is read: in a burn-after-read inbox
// the read deletes it, and the html route (which does not read) then answers 404. The
// frame goes where it is shown, as moving a frame loads it again; resolved when loaded.
function burnFrame(inbox, id) {
  const box = bodyFrame(inbox, id);
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); resolve(box); };
    const timer = setTimeout(done, 10000); // show the message even if the frame never loads
    box.firstChild.addEventListener('load', done, { once: true });
    $('panel-html').replaceChildren(box);
  });
}

let openMsg = null; // the parsed message on show, for the images switch

async function openMessage(id, fromHistory) {
  const inbox = current;
  let m;
  let frame = null;
  try {
    if (inbox.burn) frame = await burnFrame(inbox, id);
    m = await api(inbox, `/messages/${encodeURIComponent(id)}`);
  } catch (err) {
    if (err.status === 404) removeMessage(id);
    showError(err);
    return;
  }
  if (inbox !== current) return;
  if (frame) m.burnFrame = frame;
  showError(null);
  const wasOpen = openId !== null;
  openId = id;
  selectedId = id;
  openMsg = m;
  readHere.add(id);
  texts.set(id, `${m.text || ''}\n${m.html ? new DOMParser().parseFromString(m.html, 'text/html').body?.textContent || '' : ''}`);
  const summary = msgs.get(id);
  if (summary && !summary.seen && !inbox.burn) markSeen(inbox, summary);
  if (msgs.has(id)) renderList();
  showImages = false;
  renderMessage(inbox, m);
  $('reply-open').setAttribute('aria-expanded', 'false');
  $('reply-form').hidden = true;
  $('reply-status').textContent = '';
  selectTab(m.html ? 'html' : 'text', false);

  $('welcome').hidden = true;
  $('message').hidden = false;
  $('app').dataset.view = 'message';
  // Back (the browser's too) returns to the list: on a phone the two are separate screens.
  if (!fromHistory) {
    if (wasOpen && history.state && history.state.mayfly) history.replaceState({ mayfly: id }, '');
    else history.pushState({ mayfly: id }, '');
  }
  updateNav();
  $('msg-subject').focus({ preventScroll: true });
  $('message').parentElement.scrollTop = 0;
  if (matchMedia('(max-width: 700px)').matches) window.scrollTo(0, 0);
}

// renderMessage writes the message m into the view, in the page's language.
function renderMessage(inbox, m) {
  const id = m.id;
  $('msg-subject').textContent = m.subject || t('no.subject');
  $('msg-from').textContent = m.from || t('no.sender');
  $('msg-to').textContent = (m.to || []).join(', ');
  $('msg-to-box').hidden = !(m.to || []).length;
  const when = m.date || m.received_at;
  $('msg-date').textContent = when ? new Date(when).toLocaleString(lang) : '';
  if (when) $('msg-date').setAttribute('datetime', when);
  $('msg-auth').replaceChildren(badges(m.auth));
  $('reply-open').hidden = !service.replies || m.sent;
  $('reply-to').textContent = m.from || '';
  $('raw').href = withToken(inbox, `/messages/${encodeURIComponent(id)}/raw`);

  $('auth-details').tBodies[0].replaceChildren(...(m.auth_details || []).map((d) => el('tr', {},
    el('td', { text: d.method || '' }),
    el('td', {}, badge('', d.result || 'none')),
    el('td', { text: [d.reason, ...Object.entries(d.properties || {}).map(([k, v]) => `${k}=${v}`)].filter(Boolean).join('; ') }))));
  $('auth-box').hidden = !(m.auth_details || []).length;

  fillChips('codes', m.codes, 'copy.code', (c) => el('code', { text: c }));
  fillChips('links', m.links, 'copy.link', (u) => /^https?:/i.test(u)
    ? el('a', { href: u, target: '_blank', rel: 'noopener noreferrer', text: u, title: u })
    : el('span', { text: u, title: u }));

  const atts = m.attachments || [];
  $('attachments').replaceChildren(...atts.map((a) => el('li', {},
    el('a', {
      href: withToken(inbox, `/messages/${encodeURIComponent(id)}/attachments/${a.index}`), download: a.filename || '',
      text: `📎 ${a.filename || t('attachment', { n: a.index })}`,
      title: `${a.content_type || t('unknown.type')}, ${new Intl.NumberFormat(lang, { style: 'unit', unit: 'kilobyte' }).format(Math.max(1, Math.round((a.size || 0) / 1024)))}`,
    }))));
  $('strip').hidden = !((m.codes || []).length || (m.links || []).length || atts.length);

  renderBody(inbox, m);
  $('tab-html').hidden = !m.html;
  // A long body comes cut (the API's `truncated`); the source link has all of it.
  $('text').textContent = (m.text || '') + (m.truncated ? `\n\n${t('cut')}` : '');
  $('headers').tBodies[0].replaceChildren(...(m.headers || []).map((h) => el('tr', {},
    el('th', { scope: 'row', text: h.name }), el('td', { text: h.value }))));
  $('tab-source').hidden = !m.html;
  $('source').textContent = m.html || '';
}

// markSeen sets \Seen on the server, so the read state survives a reload and IMAP sees it.
async function markSeen(inbox, summary) {
  try {
    const r = await api(inbox, `/messages/${encodeURIComponent(summary.id)}`, {
      method: 'PATCH', body: JSON.stringify({ seen: true }), contentType: 'application/json',
    });
    summary.seen = !!(r && r.seen);
  } catch { /* readHere keeps it read in this page */ }
}

function fillChips(id, items, what, render) {
  items = items || [];
  $(id).replaceChildren(...items.map((v) => el('li', {}, render(v),
    el('button', { type: 'button', class: 'small', text: t('copy'), 'aria-label': t(what, { v }), onclick: (e) => copyText(v, e.currentTarget) }))));
}

function updateNav() {
  const ids = visibleIds();
  const i = openId ? ids.indexOf(openId) : -1;
  $('prev').disabled = i <= 0;
  $('next').disabled = i < 0 || i >= ids.length - 1;
}

// step moves the open message (or the list's cursor) by d in the list as shown.
function step(d) {
  const ids = visibleIds();
  if (!ids.length) return;
  const from = openId || selectedId;
  let i = from ? ids.indexOf(from) : -1;
  i = i < 0 ? 0 : Math.max(0, Math.min(ids.length - 1, i + d));
  if (openId) { if (ids[i] !== openId) openMessage(ids[i]); return; }
  selectedId = ids[i];
  for (const b of $('messages').querySelectorAll('.msg')) b.classList.toggle('selected', b.dataset.id === selectedId);
  $('messages').querySelector(`[data-id="${CSS.escape(selectedId)}"]`)?.focus();
}

function closeMessage(refocus, fromHistory) {
  const id = openId;
  openId = null;
  $('message').hidden = true;
  $('welcome').hidden = false;
  $('app').dataset.view = 'list';
  $('panel-html').replaceChildren();
  openMsg = null;
  if (id && !fromHistory && history.state && history.state.mayfly) history.back();
  for (const li of $('messages').querySelectorAll('li.open')) li.classList.remove('open');
  if (refocus) {
    const item = id && $('messages').querySelector(`[data-id="${CSS.escape(id)}"]`);
    (item || $('messages-h')).focus();
  }
}

async function deleteAll() {
  const n = msgs.size;
  if (!n || !confirm(t('delete.all.ask', { n, address: current.address }))) return;
  const inbox = current;
  const errors = [];
  for (const id of [...msgs.keys()]) {
    try {
      await api(inbox, `/messages/${encodeURIComponent(id)}`, { method: 'DELETE' });
    } catch (err) {
      if (err.status !== 404) { errors.push(err); continue; }
    }
    if (inbox === current) removeMessage(id);
  }
  showError(errors[0] || null);
  announce(t('delete.all.done'));
}

async function deleteOpen() {
  const id = openId;
  if (!id) return;
  const ids = visibleIds();
  const after = ids[ids.indexOf(id) + 1] || ids[ids.indexOf(id) - 1];
  // The deleted event may come before the answer: this function decides what opens next.
  deletedHere.add(id);
  try {
    await api(current, `/messages/${encodeURIComponent(id)}`, { method: 'DELETE' });
  } catch (err) {
    if (err.status !== 404) { deletedHere.delete(id); showError(err); return; }
  }
  announce(t('deleted'));
  if (openId !== id) { removeMessage(id); return; } // another was opened meanwhile
  if (!after || !msgs.has(after)) { closeMessage(true); removeMessage(id); return; }
  // The next message replaces this one in place, so Back still means the list.
  removeMessage(id);
  openMessage(after);
}

async function sendReply(e) {
  e.preventDefault();
  const id = openId;
  const text = $('reply-text').value;
  if (!id || !text.trim()) return;
  const button = e.currentTarget.querySelector('button');
  button.disabled = true;
  $('reply-status').textContent = t('reply.sending');
  try {
    await api(current, `/messages/${encodeURIComponent(id)}/reply`, {
      method: 'POST', body: JSON.stringify({ text }), contentType: 'application/json',
    });
    $('reply-text').value = '';
    $('reply-status').textContent = t('reply.queued');
  } catch (err) {
    $('reply-status').textContent = t('reply.failed', { error: err.message });
  } finally {
    button.disabled = false;
  }
}

// ---- tabs ---------------------------------------------------------------

const TABS = ['html', 'text', 'source', 'headers', 'report'];

function selectTab(name, focus) {
  for (const k of TABS) {
    const tab = $(`tab-${k}`);
    const on = k === name;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`panel-${k}`).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (name === 'report') openReport().catch(showError);
}

// openReport draws the open message's deliverability card (report.js, loaded on first
// use); the report is fetched only now, and reading it is no read of the message.
async function openReport() {
  const inbox = current;
  const id = openId;
  if (!inbox || !id) return;
  const { showReport } = await import('./report.js');
  if (inbox !== current || id !== openId) return;
  showReport($('panel-report'), id, () => api(inbox, `/messages/${encodeURIComponent(id)}/report`), t, lang);
}

function tabKeys(e) {
  const visible = TABS.filter((t) => !$(`tab-${t}`).hidden);
  const i = visible.indexOf(e.target.id.slice(4));
  let j = -1;
  if (e.key === 'ArrowRight') j = (i + 1) % visible.length;
  else if (e.key === 'ArrowLeft') j = (i - 1 + visible.length) % visible.length;
  else if (e.key === 'Home') j = 0;
  else if (e.key === 'End') j = visible.length - 1;
  if (j < 0) return;
  e.preventDefault();
  selectTab(visible[j], true);
}

// ---- start --------------------------------------------------------------

$('copy').addEventListener('click', (e) => { if (current) copyText(current.address, e.currentTarget); });
$('new').addEventListener('click', () => createInbox().then(() => announce(t('new.done'))).catch(showError));
$('close').addEventListener('click', () => closeMessage(true));
$('images').addEventListener('click', () => {
  if (!openMsg) return;
  showImages = !showImages;
  renderBody(current, openMsg);
});
$('domain').addEventListener('change', () => {
  $('own-domain').textContent = `@${$('domain').value}`;
});
$('own-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const local = $('local').value.trim();
  if (!local) return;
  createInbox({ local, domain: $('domain').value || undefined })
    .then(() => { $('local').value = ''; $('own').open = false; announce(t('own.done', { address: current.address })); })
    .catch(showError);
});
$('notify').checked = notifyWanted() && 'Notification' in window && Notification.permission === 'granted';
$('notify').addEventListener('change', (e) => setNotify(e.currentTarget.checked));
$('copy-user').addEventListener('click', (e) => { if (current) copyText(current.address, e.currentTarget); });
$('copy-pass').addEventListener('click', (e) => { if (current) copyText(current.token, e.currentTarget); });
$('delete').addEventListener('click', deleteOpen);
$('reply-form').addEventListener('submit', sendReply);
for (const k of TABS) {
  $(`tab-${k}`).addEventListener('click', () => selectTab(k, false));
  $(`tab-${k}`).addEventListener('keydown', tabKeys);
}
$('delete-all').addEventListener('click', deleteAll);
$('token-show').addEventListener('click', () => { tokenShown = !tokenShown; if (current) describeInbox(current); });
$('token-copy').addEventListener('click', (e) => { if (current) copyText(current.token, e.currentTarget); });
$('share-copy').addEventListener('click', (e) => { if (current) copyText(shareLink(current), e.currentTarget); });
$('keep').addEventListener('toggle', () => { if ($('keep').open && current) drawQR(current).catch(showError); });
$('ttl-form').addEventListener('submit', (e) => {
  e.preventDefault();
  patchInbox({ ttl: `${$('ttl-pick').value}s` })
    .then((r) => announce(t('ttl.done', { d: duration(r.expires_in) })))
    .catch(showError);
});
$('burn').addEventListener('change', (e) => {
  const on = e.currentTarget.checked;
  patchInbox({ burn_after_read: on })
    .then(() => announce(t(on ? 'burn.on' : 'burn.off')))
    .catch((err) => { e.target.checked = !on; showError(err); });
});
$('forget-current').addEventListener('click', () => { if (current) forget(current); });
$('others').addEventListener('toggle', () => { if ($('others').open) countOthers(); });
$('open-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const address = $('open-address').value.trim();
  const token = $('open-token').value.trim();
  try {
    const r = await api({ address, token }, '');
    const inbox = remember({ address: r.address || address, token, expires_in: r.expires_in, ttl: r.ttl });
    $('open-address').value = '';
    $('open-token').value = '';
    select(inbox);
    announce(t('open.done', { address: inbox.address }));
  } catch (err) {
    showError(err);
  }
});
window.addEventListener('hashchange', () => { const shared = fromLink(); if (shared) select(shared); });
$('prev').addEventListener('click', () => step(-1));
$('next').addEventListener('click', () => step(1));
$('reply-open').addEventListener('click', () => {
  const open = $('reply-form').hidden;
  $('reply-form').hidden = !open;
  $('reply-open').setAttribute('aria-expanded', String(open));
  if (open) $('reply-text').focus();
});
$('search').addEventListener('input', (e) => {
  query = e.currentTarget.value.trim().toLowerCase();
  refilter();
  if (query && current) readTexts(current);
});
$('help-open').addEventListener('click', () => $('help').showModal());
$('help-close').addEventListener('click', () => $('help').close());
window.addEventListener('popstate', (e) => {
  const id = e.state && e.state.mayfly;
  if (id && msgs.has(id)) openMessage(id, true);
  else if (openId) closeMessage(true, true);
});
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
  const tg = e.target;
  const typing = tg && (tg.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(tg.tagName));
  if (e.key === 'Escape') {
    if (typing && tg.id === 'search' && tg.value) return; // the browser clears the box
    if (openId) closeMessage(true);
    return;
  }
  if (typing || $('help').open) return;
  switch (e.key) {
    case 'j': step(1); break;
    case 'k': step(-1); break;
    case 'o': case 'Enter': {
      if (e.key === 'Enter' && tg.closest && tg.closest('button, a, summary')) return; // Enter clicks them
      const id = (tg.closest && tg.closest('.msg')?.dataset.id) || selectedId;
      if (!id || !msgs.has(id)) return;
      openMessage(id);
      break;
    }
    case 'Delete': if (!openId) return; deleteOpen(); break;
    case '/': $('search').focus(); break;
    case '?': $('help').showModal(); break;
    default: return;
  }
  e.preventDefault();
});
setInterval(() => {
  for (const tm of document.querySelectorAll('time[data-ts]')) tm.textContent = ago(tm.dataset.ts);
}, 30000);

$('lang').replaceChildren(...Object.entries(names).map(([code, name]) => el('option', { value: code, lang: code, text: name })));
$('lang').value = lang;
$('lang').addEventListener('change', (e) => setLang(e.currentTarget.value));
applyLang();

loadService(); // not awaited: the address comes first, the pickers fill in after

let curAddress = null;
try { curAddress = localStorage.getItem(CUR); } catch { /* storage unavailable */ }
const shared = fromLink();
const saved = shared || inboxes.find((i) => i.address === curAddress);
if (saved) select(saved);
else createInbox().catch((err) => { $('address').textContent = t('address.failed'); showError(err); });
