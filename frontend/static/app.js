// Mayfly web page: one disposable inbox at a time, live over a WebSocket.
// No framework; message data is only ever inserted as text (textContent / attributes).

const KEY = 'mayfly.inboxes';
const CUR = 'mayfly.current';
const NOTIFY = 'mayfly.notify';
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
  for (const [n, name] of units) {
    if (s >= n && s % n === 0) return `${s / n} ${name}${s / n === 1 ? '' : 's'}`;
  }
  return `${Math.round(s / 60)} minutes`;
}

function ago(iso) {
  const t = Date.parse(iso);
  if (!t) return '';
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
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
  announce('Copied');
  if (button) {
    const label = button.textContent;
    button.textContent = 'Copied';
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
  $('ttl').textContent = inbox.expires_in ? `Mail lives ${duration(inbox.expires_in)}, then it is deleted.` : '';
  $('client-user').textContent = inbox.address;
  $('client-pass').textContent = inbox.token;
  renderInboxes();
  renderList();
  showError(null);
  list();
  connect();
}

function forget(inbox) {
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
  announce(`Forgot ${inbox.address}`);
}

function renderInboxes() {
  const ul = $('inboxes');
  ul.replaceChildren(...inboxes.map((inbox) => {
    const isCur = inbox === current;
    const pick = el('button', { type: 'button', class: 'link', text: inbox.address, onclick: () => select(inbox) });
    if (isCur) pick.setAttribute('aria-current', 'true');
    const drop = el('button', { type: 'button', class: 'small', text: 'Forget', 'aria-label': `Forget ${inbox.address}`, onclick: () => forget(inbox) });
    return el('li', isCur ? { class: 'current' } : {}, pick, drop);
  }));
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

function itemFor(m) {
  const unread = !m.seen && !readHere.has(m.id);
  const time = el('time', { datetime: m.received_at, 'data-ts': m.received_at, text: ago(m.received_at) });
  const btn = el('button', { type: 'button', class: 'msg', 'data-id': m.id, onclick: () => openMessage(m.id) },
    el('span', { class: 'line' },
      el('span', { class: 'from' }, el('span', { class: 'dot', 'aria-hidden': 'true' }),
        m.sent ? `To ${(m.to || []).join(', ')}` : m.from || '(no sender)'), time),
    el('span', { class: 'subject', text: m.subject || '(no subject)' }),
    m.sent ? el('span', { class: 'badges' }, el('span', { class: 'badge other', text: 'Sent' })) : badges(m.auth));
  if (unread) btn.prepend(el('span', { class: 'visually-hidden', text: 'Unread: ' }));
  return el('li', { class: unread ? 'unread' : '' }, btn);
}

function renderList() {
  const ol = $('messages');
  const focused = document.activeElement && ol.contains(document.activeElement)
    ? document.activeElement.closest('[data-id]')?.dataset.id : null;
  const sorted = [...msgs.values()].sort((a, b) => b.uid - a.uid);
  ol.replaceChildren(...sorted.map(itemFor));
  if (focused) ol.querySelector(`[data-id="${CSS.escape(focused)}"]`)?.focus();
  $('empty').hidden = sorted.length > 0;
  updateTitle();
}

function updateTitle() {
  let n = 0;
  for (const m of msgs.values()) if (!m.seen && !readHere.has(m.id)) n++;
  document.title = n ? `(${n}) Mayfly` : 'Mayfly';
}

function removeMessage(id) {
  msgs.delete(id);
  $('messages').querySelector(`[data-id="${CSS.escape(id)}"]`)?.closest('li')?.remove();
  $('empty').hidden = msgs.size > 0;
  if (openId === id) closeMessage(true);
  updateTitle();
}

// ---- live updates -------------------------------------------------------

function setConn(text) { $('conn').textContent = text; }

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
      $('empty').hidden = true;
      updateTitle();
      announce(`New mail: ${m.subject || '(no subject)'}`);
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
    setConn('reconnecting…');
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
  const n = new Notification(m.from || 'New mail', { body: m.subject || '(no subject)', tag: m.id });
  n.onclick = () => { window.focus(); openMessage(m.id); n.close(); };
}

async function setNotify(on) {
  if (on && 'Notification' in window && Notification.permission !== 'granted') {
    on = (await Notification.requestPermission()) === 'granted';
    if (!on) showError(new Error('Notifications are blocked for this site in the browser.'));
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
}

// ---- one message --------------------------------------------------------

// renderBody shows the HTML body from the html route, whose Content-Security-Policy
// sandboxes it (no scripts, not our origin) and blocks remote content until asked.
// The iframe's own sandbox says the same, so neither alone is trusted.
function renderBody(inbox, m) {
  const panel = $('panel-html');
  const remote = m.html ? m.remote_content || 0 : 0;
  $('images-box').hidden = !remote;
  $('images-note').textContent = showImages
    ? `Remote content shown (${remote}).`
    : `${remote} remote image${remote === 1 ? '' : 's'} or style${remote === 1 ? '' : 's'} blocked, so the sender cannot see that you opened this.`;
  $('images').setAttribute('aria-pressed', String(showImages));
  $('images').textContent = showImages ? 'Block remote images' : 'Show remote images';
  if (!m.html) { panel.replaceChildren(); return; }
  const src = withToken(inbox, `/messages/${encodeURIComponent(m.id)}/html`) + (showImages ? '&images=1' : '');
  const frame = el('iframe', {
    id: 'body', sandbox: 'allow-popups allow-popups-to-escape-sandbox', src,
    title: 'Message body (HTML)', referrerpolicy: 'no-referrer', loading: 'eager',
  });
  panel.replaceChildren(frame);
}

let openMsg = null; // the parsed message on show, for the images switch

async function openMessage(id) {
  const inbox = current;
  let m;
  try {
    m = await api(inbox, `/messages/${encodeURIComponent(id)}`);
  } catch (err) {
    if (err.status === 404) removeMessage(id);
    showError(err);
    return;
  }
  if (inbox !== current) return;
  showError(null);
  openId = id;
  openMsg = m;
  readHere.add(id);
  if (msgs.has(id)) renderList();

  $('msg-subject').textContent = m.subject || '(no subject)';
  $('msg-from').textContent = m.from || '(no sender)';
  $('msg-to').textContent = (m.to || []).join(', ');
  const when = m.date || m.received_at;
  $('msg-date').textContent = when ? new Date(when).toLocaleString() : '';
  $('msg-auth').replaceChildren(badges(m.auth));
  $('reply-form').hidden = !service.replies || m.sent;
  $('reply-to').textContent = m.from || '';
  $('reply-status').textContent = '';
  $('raw').href = withToken(inbox, `/messages/${encodeURIComponent(id)}/raw`);

  $('auth-details').tBodies[0].replaceChildren(...(m.auth_details || []).map((d) => el('tr', {},
    el('td', { text: d.method || '' }),
    el('td', {}, badge('', d.result || 'none')),
    el('td', { text: [d.reason, ...Object.entries(d.properties || {}).map(([k, v]) => `${k}=${v}`)].filter(Boolean).join('; ') }))));
  $('auth-box').hidden = !(m.auth_details || []).length;

  fillCopyList('codes', m.codes, 'code', (c) => el('code', { text: c }));
  fillCopyList('links', m.links, 'link', (u) => /^https?:/i.test(u)
    ? el('a', { href: u, target: '_blank', rel: 'noopener noreferrer', text: u })
    : el('span', { text: u }));

  const atts = m.attachments || [];
  $('attachments').replaceChildren(...atts.map((a) => el('li', {},
    el('a', { href: withToken(inbox, `/messages/${encodeURIComponent(id)}/attachments/${a.index}`), download: a.filename || '', text: a.filename || `attachment ${a.index}` }),
    ` (${a.content_type || 'unknown type'}, ${Math.max(1, Math.round((a.size || 0) / 1024))} KB)`)));
  $('att-box').hidden = !atts.length;

  showImages = false;
  renderBody(inbox, m);
  $('tab-html').hidden = !m.html;
  // A long body comes cut (the API's `truncated`); the source link has all of it.
  $('text').textContent = (m.text || '') + (m.truncated ? '\n\n[… cut here; “Raw source” has the whole message]' : '');
  $('headers').tBodies[0].replaceChildren(...(m.headers || []).map((h) => el('tr', {},
    el('th', { scope: 'row', text: h.name }), el('td', { text: h.value }))));
  selectTab(m.html ? 'html' : 'text', false);

  $('message').hidden = false;
  $('msg-subject').focus();
}

function fillCopyList(id, items, what, render) {
  items = items || [];
  $(id).replaceChildren(...items.map((v) => el('li', {}, render(v),
    el('button', { type: 'button', class: 'small', text: 'Copy', 'aria-label': `Copy ${what} ${v}`, onclick: (e) => copyText(v, e.currentTarget) }))));
  $(`${id}-box`).hidden = !items.length;
}

function closeMessage(refocus) {
  const id = openId;
  openId = null;
  $('message').hidden = true;
  $('panel-html').replaceChildren();
  openMsg = null;
  if (refocus) {
    const item = id && $('messages').querySelector(`[data-id="${CSS.escape(id)}"]`);
    (item || $('messages-h')).focus();
  }
}

async function deleteOpen() {
  const id = openId;
  if (!id) return;
  try {
    await api(current, `/messages/${encodeURIComponent(id)}`, { method: 'DELETE' });
  } catch (err) {
    if (err.status !== 404) { showError(err); return; }
  }
  removeMessage(id);
  announce('Message deleted');
}

async function sendReply(e) {
  e.preventDefault();
  const id = openId;
  const text = $('reply-text').value;
  if (!id || !text.trim()) return;
  const button = e.currentTarget.querySelector('button');
  button.disabled = true;
  $('reply-status').textContent = 'Sending…';
  try {
    await api(current, `/messages/${encodeURIComponent(id)}/reply`, {
      method: 'POST', body: JSON.stringify({ text }), contentType: 'application/json',
    });
    $('reply-text').value = '';
    $('reply-status').textContent = 'Reply queued for delivery.';
  } catch (err) {
    $('reply-status').textContent = `Not sent: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

// ---- tabs ---------------------------------------------------------------

const TABS = ['html', 'text', 'headers'];

function selectTab(name, focus) {
  for (const t of TABS) {
    const tab = $(`tab-${t}`);
    const on = t === name;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`panel-${t}`).hidden = !on;
    if (on && focus) tab.focus();
  }
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
$('new').addEventListener('click', () => createInbox().then(() => announce('New address created')).catch(showError));
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
    .then(() => { $('local').value = ''; $('own').open = false; announce(`Now using ${current.address}`); })
    .catch(showError);
});
$('notify').checked = notifyWanted() && 'Notification' in window && Notification.permission === 'granted';
$('notify').addEventListener('change', (e) => setNotify(e.currentTarget.checked));
$('copy-user').addEventListener('click', (e) => { if (current) copyText(current.address, e.currentTarget); });
$('copy-pass').addEventListener('click', (e) => { if (current) copyText(current.token, e.currentTarget); });
$('delete').addEventListener('click', deleteOpen);
$('reply-form').addEventListener('submit', sendReply);
for (const t of TABS) {
  $(`tab-${t}`).addEventListener('click', () => selectTab(t, false));
  $(`tab-${t}`).addEventListener('keydown', tabKeys);
}
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && openId) closeMessage(true);
});
setInterval(() => {
  for (const t of document.querySelectorAll('time[data-ts]')) t.textContent = ago(t.dataset.ts);
}, 30000);

loadService(); // not awaited: the address comes first, the pickers fill in after

let curAddress = null;
try { curAddress = localStorage.getItem(CUR); } catch { /* storage unavailable */ }
const saved = inboxes.find((i) => i.address === curAddress);
if (saved) select(saved);
else createInbox().catch((err) => { $('address').textContent = 'Could not create an address.'; showError(err); });
