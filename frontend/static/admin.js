// The admin page (/admin): the namespaces of a shared instance, their keys, usage and
// recent activity, over the admin routes of /api/v1 (docs/teams.md). The admin key is
// pasted once per tab and kept in sessionStorage, never in localStorage or a cookie, so
// it leaves with the tab; it goes to this server only, as a Bearer token. Every value
// the server returns is inserted as text.

const KEY = 'mayfly-admin-key';
const MiB = 1024 * 1024;
const $ = (id) => document.getElementById(id);

let namespaces = [];
let refreshing = null;

// APIError is a refusal of the API, with its status and machine-readable code.
class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + sessionStorage.getItem(KEY) };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (err) {
    throw new APIError(0, 'network', 'the server cannot be reached (' + err.message + ')');
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { /* not JSON: said below */ }
  if (!res.ok) {
    const e = data && data.error;
    throw new APIError(res.status, e ? e.code : 'http_' + res.status, e ? e.message : res.statusText || 'HTTP ' + res.status);
  }
  return data;
}

// describe says what went wrong in words an operator can act on: a refused key is
// named as such, anything else is the API's own message with its code and status.
function describe(what, err) {
  if (err.status === 401) return `${what}: the key was refused (${err.message}). Paste the admin key, MAYFLY_API_KEY of the server.`;
  if (err.status === 403) return `${what}: the key was refused: it is not the admin key (${err.message}). Namespace keys and inbox tokens cannot manage namespaces.`;
  if (err.status === 0) return `${what}: ${err.message}.`;
  return `${what}: ${err.message} (${err.code}, HTTP ${err.status}).`;
}

function showError(what, err) {
  const box = $('error');
  box.textContent = describe(what, err);
  box.hidden = false;
  if (err.status === 401 || err.status === 403) signOut(false);
}

function clearError() { $('error').hidden = true; $('error').textContent = ''; }

function announce(text) { $('status').textContent = text; }

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function bytes(n) {
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return (n >= 100 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
}

function time(iso) {
  if (!iso) return el('span', { class: 'muted', text: 'never' });
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return el('span', { text: iso });
  return el('time', { datetime: iso, title: iso, text: d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' }) });
}

// duration shortens Go's "2h0m0s" to "2h".
function duration(d) {
  return d.replace(/(\d[hm])0m0s$|(\d[hm])0s$/, '$1$2').replace(/^(\d+h)0m$/, '$1');
}

function ofLimit(used, limit, fmt = String) {
  return limit ? `${fmt(used)} of ${fmt(limit)}` : `${fmt(used)} (no limit)`;
}

// --- signing in ---

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  clearError();
  try {
    await refresh();
  } catch (err) {
    showError('Signing in failed', err);
    return;
  }
  $('login').hidden = true;
  $('admin').hidden = false;
  $('signout').hidden = false;
  announce('Signed in.');
  loadDomain();
}

function signOut(clearMessage = true) {
  sessionStorage.removeItem(KEY);
  if (clearMessage) clearError();
  $('admin').hidden = true;
  $('signout').hidden = true;
  $('secret').hidden = true;
  $('secret-key').value = '';
  $('login').hidden = false;
  $('key').value = '';
  $('key').focus();
}

async function loadDomain() {
  try {
    const svc = await api('GET', '/api/v1/service');
    if (svc && svc.domains && svc.domains.length) $('domain').textContent = svc.domains[0];
  } catch { /* the hint keeps its generic wording */ }
}

// --- namespaces ---

// refresh asks for the namespaces and the activity again; concurrent calls share one.
function refresh() {
  if (!refreshing) {
    refreshing = Promise.all([loadNamespaces(), loadActivity()]).finally(() => { refreshing = null; });
  }
  return refreshing;
}

let drawn = '';

async function loadNamespaces() {
  const data = await api('GET', '/api/v1/namespaces');
  namespaces = (data && data.namespaces) || [];
  // The periodic refresh redraws only what changed, so a reader's place is kept.
  const now = JSON.stringify(namespaces);
  if (now === drawn) return;
  drawn = now;
  drawNamespaces();
}

function drawNamespaces() {
  const list = $('namespaces');
  // An open edit form keeps what the admin typed across a refresh, and the focus
  // stays on the control it was on (each has a data-focus name within its namespace).
  const editing = new Map();
  for (const art of list.querySelectorAll('article.ns')) {
    const form = art.querySelector('.edit-form');
    if (!form.hidden) editing.set(art.dataset.name, new FormData(form));
  }
  const active = document.activeElement;
  const focus = active && list.contains(active) && active.dataset.focus && active.closest('article.ns')
    ? { ns: active.closest('article.ns').dataset.name, name: active.dataset.focus } : null;
  list.replaceChildren(...namespaces.map((ns) => drawNamespace(ns, editing.get(ns.name))));
  if (focus) {
    const art = [...list.querySelectorAll('article.ns')].find((a) => a.dataset.name === focus.ns);
    const again = art && [...art.querySelectorAll('[data-focus]')].find((e) => e.dataset.focus === focus.name);
    (again || $('refresh')).focus();
  }
  $('ns-count').textContent = namespaces.length ? `(${namespaces.length})` : '';
  $('ns-empty').hidden = namespaces.length > 0;
  const pick = $('act-ns');
  const chosen = pick.value;
  pick.replaceChildren(el('option', { value: '', text: 'all' }), ...namespaces.map((ns) => el('option', { value: ns.name, text: ns.name })));
  pick.value = namespaces.some((ns) => ns.name === chosen) ? chosen : '';
}

function drawNamespace(ns, editing) {
  const art = $('ns-template').content.firstElementChild.cloneNode(true);
  const q = (sel) => art.querySelector(sel);
  const id = 'ns-' + ns.name;
  art.dataset.name = ns.name;
  art.setAttribute('aria-labelledby', id + '-h');
  q('.ns-name').id = id + '-h';
  q('.ns-name').textContent = ns.name;
  q('.ns-created').replaceChildren('created ', time(ns.created_at));
  const u = ns.usage || {};
  q('.u-inboxes').textContent = ofLimit(u.inboxes || 0, ns.max_inboxes);
  q('.u-messages').textContent = String(u.messages || 0);
  q('.u-bytes').textContent = ofLimit(u.bytes || 0, ns.max_bytes, bytes);
  q('.u-sends').textContent = ns.send_limit ? `${u.sends || 0} of ${ns.send_limit}` : `${u.sends || 0} (server default)`;
  q('.u-ttl').textContent = ns.ttl ? duration(ns.ttl) : 'server default';
  if (ns.max_inboxes && (u.inboxes || 0) >= ns.max_inboxes) q('.u-inboxes').classList.add('full');
  if (ns.max_bytes && (u.bytes || 0) >= ns.max_bytes) q('.u-bytes').classList.add('full');

  const keys = ns.keys || [];
  q('.keys-table').setAttribute('aria-label', 'Keys of ' + ns.name);
  q('.keys-table tbody').replaceChildren(...keys.map((k) => {
    const rotate = el('button', { type: 'button', class: 'small', 'data-focus': 'rotate ' + k.id, 'aria-label': `Rotate key ${k.prefix}… of ${ns.name}`, text: 'Rotate' });
    rotate.addEventListener('click', () => rotateKey(ns.name, k));
    const revoke = el('button', { type: 'button', class: 'small danger', 'data-focus': 'revoke ' + k.id, 'aria-label': `Revoke key ${k.prefix}… of ${ns.name}`, text: 'Revoke' });
    revoke.addEventListener('click', () => revokeKey(ns.name, k));
    return el('tr', { 'data-key': k.id },
      el('td', {}, el('code', { text: k.prefix + '…' })),
      el('td', {}, time(k.created_at)),
      el('td', {}, time(k.last_used_at)),
      el('td', { class: 'buttons' }, rotate, ' ', revoke));
  }));
  q('.keys-table').closest('.scroll').hidden = keys.length === 0;
  q('.no-keys').hidden = keys.length > 0;

  const newKey = q('.new-key');
  newKey.setAttribute('aria-label', 'New key for ' + ns.name);
  newKey.addEventListener('click', () => addKey(ns.name));
  const del = q('.delete');
  del.setAttribute('aria-label', 'Delete namespace ' + ns.name);
  del.addEventListener('click', () => deleteNamespace(ns.name));

  const form = q('.edit-form');
  const edit = q('.edit');
  edit.setAttribute('aria-label', 'Edit limits of ' + ns.name);
  edit.setAttribute('aria-controls', id + '-edit');
  form.id = id + '-edit';
  form.setAttribute('aria-label', 'Limits of ' + ns.name);
  for (const f of ['ttl', 'inboxes', 'bytes', 'send']) {
    q('.f-' + f).id = `${id}-${f}`;
    q('.l-' + f).htmlFor = `${id}-${f}`;
  }
  const fill = () => {
    q('.f-ttl').value = ns.ttl ? duration(ns.ttl) : '';
    q('.f-inboxes').value = ns.max_inboxes || 0;
    q('.f-bytes').value = ns.max_bytes ? +(ns.max_bytes / MiB).toFixed(3) : 0;
    q('.f-send').value = ns.send_limit || '';
  };
  const open = (on) => {
    form.hidden = !on;
    edit.setAttribute('aria-expanded', String(on));
  };
  edit.addEventListener('click', () => {
    if (form.hidden) { fill(); open(true); q('.f-ttl').focus(); } else { open(false); }
  });
  q('.cancel').addEventListener('click', () => { open(false); edit.focus(); });
  form.addEventListener('submit', (ev) => { ev.preventDefault(); saveLimits(ns.name, form); });
  if (editing) {
    open(true);
    for (const [k, v] of editing) form.elements[k].value = v;
  }
  return art;
}

// limits reads a form's limits as the API takes them: numbers, MiB as bytes.
function limits(form) {
  const v = (name) => form.elements[name].value.trim();
  return {
    ttl: v('ttl'),
    max_inboxes: Number(v('max_inboxes') || 0),
    max_bytes: Math.round(Number(v('max_bytes') || 0) * MiB),
    send_limit: v('send_limit'),
  };
}

async function createNamespace(form) {
  clearError();
  const body = { name: form.elements.name.value.trim(), ...limits(form) };
  let ns;
  try {
    ns = await api('POST', '/api/v1/namespaces', body);
  } catch (err) {
    showError(`Creating namespace "${body.name}" failed`, err);
    return;
  }
  form.reset();
  showSecret(ns.name || body.name, ns.key);
  await refreshQuietly();
}

async function saveLimits(name, form) {
  clearError();
  try {
    await api('PATCH', '/api/v1/namespaces/' + encodeURIComponent(name), limits(form));
  } catch (err) {
    showError(`Saving the limits of "${name}" failed`, err);
    return;
  }
  form.hidden = true;
  announce(`Limits of ${name} saved.`);
  await refreshQuietly();
  const edit = document.querySelector(`article.ns[data-name="${CSS.escape(name)}"] .edit`);
  if (edit) edit.focus();
}

async function addKey(name) {
  clearError();
  let k;
  try {
    k = await api('POST', `/api/v1/namespaces/${encodeURIComponent(name)}/keys`);
  } catch (err) {
    showError(`Making a key for "${name}" failed`, err);
    return;
  }
  showSecret(name, k.key);
  await refreshQuietly();
}

async function rotateKey(name, k) {
  const yes = await confirmAction(`Rotate key ${k.prefix}…?`,
    `A new key for ${name} is made and shown once; ${k.prefix}… stops working at once, on every node. Put the new key where the old one was.`, 'Rotate');
  if (!yes) return;
  clearError();
  let fresh;
  try {
    fresh = await api('POST', `/api/v1/namespaces/${encodeURIComponent(name)}/keys`, { replace: k.id });
  } catch (err) {
    showError(`Rotating key ${k.prefix}… of "${name}" failed`, err);
    return;
  }
  showSecret(name, fresh.key);
  await refreshQuietly();
}

async function revokeKey(name, k) {
  const yes = await confirmAction(`Revoke key ${k.prefix}…?`,
    `The key stops working at once, on every node; whatever uses it (CI jobs, mail clients) is refused from its next request.`, 'Revoke');
  if (!yes) return;
  clearError();
  try {
    await api('DELETE', `/api/v1/namespaces/${encodeURIComponent(name)}/keys/${encodeURIComponent(k.id)}`);
  } catch (err) {
    showError(`Revoking key ${k.prefix}… of "${name}" failed`, err);
    return;
  }
  announce(`Key ${k.prefix}… of ${name} revoked.`);
  await refreshQuietly();
  $('refresh').focus();
}

async function deleteNamespace(name) {
  const yes = await confirmAction(`Delete namespace ${name}?`,
    `Its keys stop working at once and all its inboxes and mail are deleted. This cannot be undone.`, 'Delete namespace');
  if (!yes) return;
  clearError();
  try {
    await api('DELETE', '/api/v1/namespaces/' + encodeURIComponent(name));
  } catch (err) {
    showError(`Deleting namespace "${name}" failed`, err);
    return;
  }
  announce(`Namespace ${name} deleted.`);
  await refreshQuietly();
  $('refresh').focus();
}

async function refreshQuietly() {
  try { await refresh(); } catch (err) { showError('Loading failed', err); }
}

// --- the key shown once ---

function showSecret(name, key) {
  $('secret-ns').textContent = name;
  $('secret-key').value = key || '';
  $('secret-copy').textContent = 'Copy key';
  $('secret').hidden = false;
  $('secret').focus();
}

async function copySecret() {
  const input = $('secret-key');
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // No clipboard permission (plain http, an old browser): select it for Ctrl+C.
    input.select();
    $('secret-copy').textContent = 'Press Ctrl+C';
    return;
  }
  $('secret-copy').textContent = 'Copied';
  announce('Key copied.');
}

function hideSecret() {
  $('secret').hidden = true;
  $('secret-key').value = '';
  $('refresh').focus();
}

// --- confirmation ---

function confirmAction(title, text, yes) {
  const dlg = $('confirm');
  $('confirm-h').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-yes').textContent = yes;
  const back = document.activeElement;
  return new Promise((resolve) => {
    const done = (answer) => {
      $('confirm-yes').removeEventListener('click', onYes);
      $('confirm-no').removeEventListener('click', onNo);
      dlg.removeEventListener('cancel', onNo);
      if (dlg.open) dlg.close();
      if (back && back.isConnected) back.focus();
      resolve(answer);
    };
    const onYes = () => done(true);
    const onNo = () => done(false);
    $('confirm-yes').addEventListener('click', onYes);
    $('confirm-no').addEventListener('click', onNo);
    // Esc. Not 'close': that event comes a task after the dialog closed, and would
    // cancel the next confirmation if it were opened in between.
    dlg.addEventListener('cancel', onNo);
    dlg.showModal();
    $('confirm-no').focus(); // the safe answer is the default
  });
}

// --- activity ---

const KINDS = { received: 'received', refused: 'refused', sent: 'sent' };

async function loadActivity() {
  const ns = $('act-ns').value;
  const q = new URLSearchParams({ limit: '100' });
  if (ns) q.set('namespace', ns);
  const data = await api('GET', '/api/v1/activity?' + q);
  const rows = (data && data.activity) || [];
  $('activity').tBodies[0].replaceChildren(...rows.map((a) => {
    const detail = [a.code, a.reason].filter(Boolean).join(' ') || (a.id ? 'id ' + a.id : '');
    return el('tr', { class: 'kind-' + (KINDS[a.kind] || 'other') },
      el('td', {}, time(a.time)),
      el('td', {}, el('span', { class: 'kind', text: a.kind })),
      el('td', { text: a.namespace || '' }),
      el('td', { class: 'mono', text: a.address || '' }),
      el('td', { class: 'mono', text: a.from || '' }),
      el('td', { text: detail }));
  }));
  $('activity').hidden = rows.length === 0;
  $('act-empty').hidden = rows.length > 0;
}

// --- wiring ---

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const key = $('key').value.trim();
  if (key) signIn(key);
});
$('signout').addEventListener('click', () => signOut());
$('refresh').addEventListener('click', async () => {
  clearError();
  await refreshQuietly();
  announce('Refreshed.');
});
$('create-form').addEventListener('submit', (ev) => { ev.preventDefault(); createNamespace(ev.target); });
$('secret-copy').addEventListener('click', copySecret);
$('secret-done').addEventListener('click', hideSecret);
$('act-ns').addEventListener('change', () => loadActivity().catch((err) => showError('Loading the activity failed', err)));

// Usage moves while the page is open: ask again every 15 s while it is seen.
setInterval(() => {
  if (!document.hidden && !$('admin').hidden) refresh().catch(() => {});
}, 15000);

if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY));
else $('key').focus();
