// The deliverability card of the open message: GET .../messages/{id}/report drawn as a
// score out of 10 and its checks by category. app.js loads this module the first time
// the card's tab is opened, so the first screen stays small; the report is asked for
// only then, and reading it never burns the message. Report data is inserted as text only.

const CATEGORIES = ['authentication', 'host', 'domain', 'spam', 'content'];
const ICONS = { pass: '✓', warn: '!', fail: '✗', info: 'ℹ\uFE0E' };

// shown holds the open message's report (or its pending fetch), so a language
// change or a tab switch redraws without asking the server again.
let shown = { id: null, report: null, error: null, pending: null };

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

// showReport fills panel with the report of message id: loading, then the card or the
// error. load fetches the report; t and lang are the page's strings and language.
export async function showReport(panel, id, load, t, lang) {
  if (shown.id !== id) shown = { id, report: null, error: null, pending: null };
  const mine = shown;
  const again = () => { shown = { id: null }; showReport(panel, id, load, t, lang); };
  if (mine.report || mine.error) { draw(panel, mine, t, lang, again); return; }
  panel.setAttribute('aria-busy', 'true');
  panel.replaceChildren(el('p', { class: 'muted report-state', role: 'status', text: t('report.loading') }));
  if (!mine.pending) {
    mine.pending = load().then((r) => { mine.report = r; }, (err) => { mine.error = err; });
  }
  await mine.pending;
  if (shown !== mine || panel.hidden) return; // another message, or the tab was left
  draw(panel, mine, t, lang, again);
}

// draw writes the card, or the error with a button that asks the server again.
function draw(panel, s, t, lang, again) {
  panel.removeAttribute('aria-busy');
  if (s.error) {
    const retry = el('button', { type: 'button', class: 'small', text: t('report.retry') });
    retry.addEventListener('click', again);
    // 404: the message is gone, most often burned by its own reading in a burn-after-read
    // inbox; asking again cannot help, so no button.
    if (s.error.status === 404) {
      panel.replaceChildren(el('p', { class: 'report-state', role: 'status', text: t('report.gone') }));
      return;
    }
    const msg = s.error.status === 501 ? t('report.unavailable') : t('report.failed', { error: s.error.message || String(s.error) });
    panel.replaceChildren(el('p', { class: 'error report-state', role: 'alert', text: msg }), retry);
    return;
  }
  panel.replaceChildren(card(s.report, t, lang));
}

function num(n, lang) {
  return new Intl.NumberFormat(lang, { maximumFractionDigits: 1 }).format(n);
}

function card(r, t, lang) {
  const box = el('div', { class: 'report' });
  const score = Number(r.score) || 0;
  const grade = score >= 9 ? 'pass' : score >= 6 ? 'warn' : 'fail';
  box.append(el('p', { class: `report-score ${grade}` },
    el('span', { class: 'report-score-label', text: t('report.score') }), ' ',
    el('span', { class: 'report-score-num', text: num(score, lang) }),
    el('span', { class: 'report-score-of', text: ` / ${num(10, lang)}` })));

  const checks = Array.isArray(r.checks) ? r.checks : [];
  const cats = [...CATEGORIES, ...new Set(checks.map((c) => c.category).filter((c) => !CATEGORIES.includes(c)))];
  for (const cat of cats) {
    const mine = checks.filter((c) => c.category === cat);
    if (!mine.length && cat !== 'spam') continue;
    const sec = el('section', { class: 'report-cat', 'aria-labelledby': `report-cat-${cat}` },
      el('h3', { id: `report-cat-${cat}`, text: t(`report.cat.${cat}`) === `report.cat.${cat}` ? cat : t(`report.cat.${cat}`) }));
    if (mine.length) sec.append(el('ul', { class: 'report-checks' }, ...mine.map((c) => check(c, t, lang))));
    if (cat === 'spam') sec.append(spam(r.spam, t, lang));
    box.append(sec);
  }
  return box;
}

function check(c, t, lang) {
  const status = ICONS[c.status] ? c.status : 'info';
  const li = el('li', { class: `report-check ${status}` });
  const head = el('p', { class: 'report-check-head' },
    el('span', { class: `report-status ${status}` },
      el('span', { 'aria-hidden': 'true', text: `${ICONS[status]} ` }), t(`report.status.${status}`)),
    ' ', el('code', { class: 'report-id', text: c.id || '' }));
  if (c.points > 0) head.append(' ', el('span', { class: 'report-points', text: t('report.points', { n: num(c.points, lang) }) }));
  li.append(head);
  if (c.detail) li.append(el('p', { class: 'report-detail', text: c.detail }));
  if (c.fix) li.append(el('p', { class: 'report-fix' }, el('span', { class: 'strong', text: `${t('report.fix')} ` }), c.fix));
  return li;
}

// spam shows rspamd's verdict and symbols, or says it was not run: the card never
// guesses a spam score.
function spam(s, t, lang) {
  if (!s) return el('p', { class: 'muted report-rspamd', text: t('report.rspamd.none') });
  const box = el('div', { class: 'report-rspamd' });
  box.append(el('p', {}, t('report.rspamd.score', { score: num(s.score, lang), required: num(s.required_score, lang), action: s.action || '' })));
  const symbols = Array.isArray(s.symbols) ? s.symbols : [];
  if (!symbols.length) return box;
  const table = el('table', { class: 'report-symbols' },
    el('caption', { class: 'visually-hidden', text: t('report.rspamd.symbols') }),
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col', text: t('report.rspamd.symbol') }),
      el('th', { scope: 'col', text: t('report.rspamd.points') }),
      el('th', { scope: 'col', text: t('report.rspamd.description') }))),
    el('tbody', {}, ...symbols.map((y) => el('tr', {},
      el('th', { scope: 'row' }, el('code', { text: y.name || '' })),
      el('td', { class: 'num', text: num(Number(y.score) || 0, lang) }),
      el('td', { text: [y.description, (y.options || []).join(', ')].filter(Boolean).join(': ') })))));
  box.append(el('div', { class: 'report-table' }, table));
  return box;
}
