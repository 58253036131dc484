// mtlscope web view: a live flow list, a flow's handshake ladder and findings, two flows
// compared. Plain JavaScript, no build step. Every recorded value (certificate names, SNI,
// headers, bodies) comes from untrusted peers, so it is only ever put on the page as text
// (createTextNode, textContent, setAttribute): never through innerHTML.
'use strict';

const flows = new Map();      // id -> list row, in arrival order
const picked = new Set();     // ids ticked for comparison
const filters = { status: '', finding: '', host: '', path: '' };
const MAX_SHOWN = 300;
const RENDER_EVERY_MS = 1000;
let dirty = false;
// `mtlscope ui FILE`: the list is paged by the server from the recording's index.
let fileMode = false;
let page = 0;
const PAGE = 100;
let fileRequest = 0;

// el('td', {class: 'x'}, 'text', node…): an element whose children are text or nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function show(...nodes) {
  const main = document.getElementById('main');
  main.replaceChildren(...nodes);
}

function statusClass(s) {
  return s ? 'status-' + String(s)[0] + 'xx' : '';
}

function legCell(l) {
  if (!l) return '—';
  const names = l.ca_names === null ? 'CA names not visible' : l.ca_names === 1 ? '1 CA name' : l.ca_names + ' CA names';
  const asked = l.phase ? l.phase + ', ' + names : 'not asked';
  return asked + ' · ' + (l.presented ? l.presented : 'none presented');
}

function chips(findings, clickable) {
  return findings.map(f => clickable
    ? el('button', { class: 'chip ' + f.severity, title: f.severity, onclick: ev => { ev.stopPropagation(); filters.finding = f.id; renderList(); } }, f.id)
    : el('span', { class: 'chip ' + f.severity, title: f.severity }, f.id));
}

function matches(r) {
  if (filters.status) {
    const s = r.status === null ? (r.error ? 'error' : '') : String(r.status);
    if (!s.startsWith(filters.status)) return false;
  }
  if (filters.finding && !r.findings.some(f => f.id === filters.finding)) return false;
  if (filters.host && !r.host.toLowerCase().includes(filters.host.toLowerCase())) return false;
  if (filters.path && !r.path.toLowerCase().includes(filters.path.toLowerCase())) return false;
  return true;
}

// ---- the list ----

function filterInput(name, placeholder) {
  return el('label', {}, name + ' ', el('input', {
    id: 'filter-' + name, value: filters[name], placeholder,
    oninput: ev => { filters[name] = ev.target.value.trim(); page = 0; renderList(); },
  }));
}

function listView() {
  const compare = el('button', { id: 'compare', onclick: () => {
    const [a, b] = [...picked];
    location.hash = '#/compare/' + a + '/' + b;
  } }, 'Compare the two ticked flows');
  const findingSelect = el('select', { id: 'filter-finding', onchange: ev => { filters.finding = ev.target.value; page = 0; renderList(); } });
  show(
    el('div', { class: 'filters' },
      filterInput('status', '4, 403, error'),
      el('label', {}, 'finding ', findingSelect),
      filterInput('host', fileMode ? 'exact name' : 'substring'),
      filterInput('path', 'substring'),
      el('button', { onclick: () => { Object.keys(filters).forEach(k => filters[k] = ''); page = 0; renderList(); } }, 'clear'),
      compare),
    el('div', { id: 'counts', class: 'counts' }),
    el('p', { id: 'shown', class: 'muted' }),
    el('table', { id: 'flows' },
      el('thead', {}, el('tr', {},
        ['', 'time', 'conn', 'request', 'status', 'client leg: asked · presented', 'upstream leg: asked · presented', 'findings']
          .map(h => el('th', {}, h)))),
      el('tbody')));
  renderList();
}

// Redraw the list at most every RENDER_EVERY_MS: a busy proxy must not keep the browser (on
// the same machine) redrawing, taking CPU from the relay.
function markDirty() {
  if (dirty) return;
  dirty = true;
  setTimeout(() => { dirty = false; if (document.getElementById('flows')) renderList(); }, RENDER_EVERY_MS);
}

function renderList() {
  const tbody = document.querySelector('#flows tbody');
  if (!tbody) return;
  for (const name of ['status', 'host', 'path']) {
    const input = document.getElementById('filter-' + name);
    if (input && input.value.trim() !== filters[name]) input.value = filters[name];
  }
  if (fileMode) { renderFileList(); return; }
  // Counts per finding over every flow in memory.
  const counts = new Map();
  for (const r of flows.values()) {
    for (const f of r.findings) {
      const c = counts.get(f.id) || { n: 0, severity: f.severity };
      c.n += 1;
      counts.set(f.id, c);
    }
  }
  const sorted = [...counts.entries()].sort((a, b) => b[1].n - a[1].n);
  document.getElementById('counts').replaceChildren(
    el('span', { class: 'muted' }, 'findings: '),
    sorted.length === 0 ? el('span', { class: 'muted' }, 'none yet') : '',
    ...sorted.map(([id, c]) => el('button', {
      class: 'chip ' + c.severity, onclick: () => { filters.finding = id; renderList(); },
    }, id + ' × ' + c.n)));
  const select = document.getElementById('filter-finding');
  select.replaceChildren(el('option', { value: '' }, '(any)'),
    ...sorted.map(([id]) => el('option', { value: id }, id)));
  if (filters.finding && !counts.has(filters.finding)) select.appendChild(el('option', { value: filters.finding }, filters.finding));
  select.value = filters.finding;

  const rows = [...flows.values()].filter(matches).reverse();
  // Port checks (connections that sent nothing) are no failures: counted apart.
  let portChecks = 0;
  for (const r of flows.values()) if (r.port_check) portChecks += 1;
  document.getElementById('shown').textContent = (rows.length > MAX_SHOWN
    ? 'showing the newest ' + MAX_SHOWN + ' of ' + rows.length + ' matching flows'
    : rows.length + ' of ' + flows.size + ' flows')
    + (portChecks > 0 ? ' (' + portChecks + ' port check' + (portChecks === 1 ? '' : 's') + ')' : '');
  tbody.replaceChildren(...rows.slice(0, MAX_SHOWN).map(rowEl));
  updateCompare();
}

function rowEl(r) {
  const open = () => { location.hash = '#/flow/' + r.id; };
  const tick = el('input', { type: 'checkbox', 'aria-label': 'compare', onclick: ev => {
    ev.stopPropagation();
    if (ev.target.checked) picked.add(r.id); else picked.delete(r.id);
    updateCompare();
  } });
  tick.checked = picked.has(r.id);
  return el('tr', { class: 'row' + (r.failed ? ' failed' : '') + (r.port_check ? ' portcheck' : ''), 'data-id': r.id, onclick: open },
    el('td', {}, tick),
    el('td', { class: 'mono' }, r.time.replace('T', ' ').replace(/\.\d+/, '')),
    el('td', { class: 'mono' }, r.connection),
    el('td', { class: 'request' }, el('a', { href: '#/flow/' + r.id }, r.method ? r.method + ' ' + r.path : '(connection)'),
      r.host ? el('div', { class: 'muted' }, r.host) : ''),
    el('td', { class: r.port_check ? 'muted' : statusClass(r.status) }, r.status !== null ? String(r.status) : (r.port_check ? 'port check' : (r.error ? 'error' : '—'))),
    el('td', {}, legCell(r.client)),
    el('td', {}, legCell(r.upstream)),
    el('td', {}, chips(r.findings, true)));
}

// The recording's list: one page from the server, filters and counts over the whole file
// (the path filter applies to the page shown).
async function renderFileList() {
  const mine = ++fileRequest;
  const q = new URLSearchParams({ from: page * PAGE, limit: PAGE, status: filters.status, finding: filters.finding, host: filters.host });
  let d;
  try { d = await getJson('/api/list?' + q); } catch (e) { document.getElementById('shown').textContent = e.message; return; }
  if (mine !== fileRequest) return;
  const tbody = document.querySelector('#flows tbody');
  if (!tbody) return;
  const sorted = d.counts.findings;
  document.getElementById('counts').replaceChildren(
    el('span', { class: 'muted' }, 'findings: '),
    sorted.length === 0 ? el('span', { class: 'muted' }, 'none') : '',
    ...sorted.map(c => el('button', {
      class: 'chip ' + c.severity, onclick: () => { filters.finding = c.id; page = 0; renderList(); },
    }, c.id + ' × ' + c.n)),
    el('span', { class: 'muted' }, ' hosts: '),
    ...d.counts.hosts.slice(0, 20).map(h => el('button', {
      class: 'chip', onclick: () => { filters.host = h.name; page = 0; renderList(); },
    }, (h.name || '(none)') + ' × ' + h.n)));
  const select = document.getElementById('filter-finding');
  select.replaceChildren(el('option', { value: '' }, '(any)'), ...sorted.map(c => el('option', { value: c.id }, c.id)));
  if (filters.finding && !sorted.some(c => c.id === filters.finding)) select.appendChild(el('option', { value: filters.finding }, filters.finding));
  select.value = filters.finding;
  const rows = d.rows.filter(r => !filters.path || r.path.toLowerCase().includes(filters.path.toLowerCase()));
  const last = Math.max(0, Math.ceil(d.matched / PAGE) - 1);
  const go = p => { page = Math.min(Math.max(0, p), last); renderList(); };
  document.getElementById('shown').replaceChildren(
    d.matched === 0 ? 'no matching records' : 'records ' + (d.from + 1) + '–' + (d.from + d.rows.length) + ' of ' + d.matched + ' matching (' + d.total + ' in the recording) ',
    el('button', { id: 'page-first', onclick: () => go(0), disabled: page === 0 }, '« first'),
    el('button', { id: 'page-prev', onclick: () => go(page - 1), disabled: page === 0 }, '‹ previous'),
    el('button', { id: 'page-next', onclick: () => go(page + 1), disabled: page >= last }, 'next ›'),
    el('button', { id: 'page-last', onclick: () => go(last), disabled: page >= last }, 'last »'));
  tbody.replaceChildren(...rows.map(rowEl));
  updateCompare();
}

function updateCompare() {
  const b = document.getElementById('compare');
  if (b) b.disabled = picked.size !== 2;
}

// ---- a flow's page ----

async function getJson(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) throw new Error((await r.text()).trim() || r.statusText);
  return r.json();
}

const LANE_X = { client: 120, mtlscope: 430, server: 740 };
const COLOURS = { alert: '#c60', cert_request: '#06c', certificate: '#046', http: '#070', tcp: '#777', note: '#777', handshake: '#333', renegotiation: '#06c' };

function stepColour(s) {
  if (s.fatal) return '#b00';
  if (s.late && (s.kind === 'cert_request' || s.kind === 'renegotiation')) return '#a0a';
  return COLOURS[s.kind] || '#333';
}

function certText(c) {
  return 'subject: ' + c.subject + '\nissuer: ' + c.issuer + '\nvalid: ' + c.not_before + ' – ' + c.not_after +
    '\nEKU: ' + (c.has_eku ? c.eku.join(', ') : '(absent: any)') + '\nSHA-256: ' + c.sha256;
}

function certPanel(c) {
  const panel = document.getElementById('cert-panel');
  panel.hidden = false;
  panel.replaceChildren(el('h3', {}, 'Certificate'), el('table', {},
    [['subject', c.subject], ['issuer', c.issuer], ['valid from', c.not_before], ['valid until', c.not_after],
     ['EKU', c.has_eku ? c.eku.join(', ') : '(absent: any purpose)'], ['key usage', c.key_usage.join(', ')],
     ['SANs', c.sans.join(', ')], ['key', c.key], ['serial', c.serial], ['SHA-256', c.sha256], ['SHA-1', c.sha1]]
      .map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', { class: 'mono' }, v))),
  ));
}

function ladderSvg(ladder) {
  const ROW = 30, LINE = 14, W = 900;
  const height = 70 + ladder.steps.reduce((h, s) => h + ROW + LINE * (s.details.length + s.certs.length), 0);
  const svg = svgEl('svg', { class: 'ladder', id: 'ladder', width: W, height, viewBox: '0 0 ' + W + ' ' + height, 'font-size': 12 });
  const defs = svgEl('defs');
  const marker = svgEl('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
  marker.appendChild(svgEl('path', { d: 'M0,0L10,5L0,10z', fill: '#555' }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  for (const [name, x] of Object.entries(LANE_X)) {
    svg.appendChild(svgEl('text', { x, y: 20, 'text-anchor': 'middle', 'font-weight': 'bold' }, name));
    svg.appendChild(svgEl('line', { x1: x, y1: 30, x2: x, y2: height - 10, stroke: '#999' }));
  }
  let y = 50;
  for (const s of ladder.steps) {
    const g = svgEl('g', { 'data-kind': s.kind, 'data-leg': s.leg });
    const colour = stepColour(s);
    const x1 = LANE_X[s.from], x2 = LANE_X[s.to], mid = (x1 + x2) / 2;
    g.appendChild(svgEl('text', { x: 4, y: y + 4, fill: '#777' }, s.at_ms.toFixed(1) + ' ms'));
    const line = svgEl('line', { x1, y1: y, x2, y2: y, stroke: colour, 'stroke-width': s.late || s.fatal ? 2.5 : 1.5 });
    if (s.kind === 'note') line.setAttribute('stroke-dasharray', '3 3');
    else line.setAttribute('marker-end', 'url(#arrow)');
    g.appendChild(line);
    g.appendChild(svgEl('text', { x: mid, y: y - 5, 'text-anchor': 'middle', fill: colour, class: 'label' }, s.label + (s.late ? ' — late' : '')));
    let dy = y + LINE;
    for (const d of s.details) {
      g.appendChild(svgEl('text', { x: mid, y: dy, 'text-anchor': 'middle', fill: '#444', 'font-size': 11, class: 'detail' }, d));
      dy += LINE;
    }
    for (const c of s.certs) {
      const t = svgEl('text', { x: mid, y: dy, 'text-anchor': 'middle', fill: '#046', 'font-size': 11, class: 'cert' }, c.subject);
      t.appendChild(svgEl('title', {}, certText(c)));
      t.addEventListener('click', () => certPanel(c));
      g.appendChild(t);
      dy += LINE;
    }
    svg.appendChild(g);
    y = dy - LINE + ROW;
  }
  return svg;
}

function findingsView(findings, onRead) {
  if (findings.length === 0) return [el('p', { class: 'muted' }, 'No findings.')];
  return [
    onRead ? el('p', { class: 'muted' }, 'The record carried no findings; these were diagnosed on reading.') : '',
    ...findings.map(f => el('div', { class: 'finding ' + f.severity },
      el('div', {}, el('span', { class: 'chip ' + f.severity }, f.severity), ' ', el('code', { class: 'finding-id' }, f.id), ' ', f.summary),
      f.evidence.length ? el('ul', {}, f.evidence.map(e => el('li', {}, e))) : '',
      el('p', {}, el('b', {}, 'Fix: '), f.fix))),
  ];
}

// "What each client would send": the certs choose model's answer per leg (decided server-side).
function wouldSendView(legs) {
  if (!legs || legs.length === 0) return '';
  return el('div', { id: 'would-send' }, el('h3', {}, 'What each client would send'),
    ...legs.map(l => el('div', {},
      el('p', { class: 'muted' }, 'To the ' + (l.leg === 'client' ? "request mtlscope sent the client" : "server's request") + ', with ' + l.offered.join(', ') + ' on offer:'),
      el('table', {}, el('tr', {}, el('th', {}, 'stack'), el('th', {}, 'sends'), el('th', {}, 'why')),
        l.stacks.map(s => el('tr', {},
          el('td', { class: 'mono', title: s.clients }, s.stack + (s.basis === 'documented' ? ' (documented only)' : '')),
          el('td', { class: 'mono' }, s.sends !== null ? s.sends : (s.asks_user ? 'asks the user' : 'nothing')),
          el('td', {}, s.why, s.candidates.length > 1 || s.sends === null ? el('ul', {}, s.candidates.map(c => el('li', {}, c.candidate + ': ' + c.why))) : '')))))));
}

function headersTable(hs) {
  if (!hs || hs.length === 0) return '';
  return el('table', {}, hs.map(h => el('tr', {}, el('td', { class: 'mono' }, h.name), el('td', { class: 'mono' }, h.value))));
}

async function flowView(id) {
  show(el('p', { class: 'muted' }, 'Loading flow ' + id + '…'));
  let d;
  try { d = await getJson('/api/flows/' + encodeURIComponent(id)); } catch (e) { show(el('p', {}, 'Flow ' + id + ': ' + e.message)); return; }
  const r = d.row, f = d.flow;
  const title = (r.method ? r.method + ' ' + r.path : 'connection') + ' → ' + (r.status !== null ? r.status : (r.error || '—'));
  const base = '/api/flows/' + r.id + '/';
  show(
    el('h2', { id: 'flow-title' }, title),
    el('p', { class: 'muted' }, r.time + ' · connection ' + r.connection + ' · ' + r.mode + (r.host ? ' · ' + r.host : '') + ' · ' + r.source),
    el('p', { class: 'downloads' }, 'Download: ',
      el('a', { href: base + 'flow.jsonl', download: '' }, 'JSON Lines'),
      el('a', { href: base + 'flow.har', download: '' }, 'HAR'),
      d.keylog ? el('a', { href: base + 'keylog.txt', download: '' }, 'key log (Wireshark)') : '',
      el('a', { href: '#/' }, 'back to the list')),
    el('h3', {}, 'Findings'),
    el('div', { id: 'findings' }, findingsView(f.findings, d.diagnosed_on_read)),
    wouldSendView(d.would_send),
    el('h3', {}, 'Handshake ladder'),
    el('p', { class: 'muted' }, 'Both legs on one time axis (ms from the client connection). Hover a certificate for its facts; click it for all of them.'),
    el('div', { class: 'ladder-box' }, ladderSvg(d.ladder)),
    el('div', { id: 'cert-panel', class: 'cert-panel', hidden: 'hidden' }),
    f.request ? el('div', {}, el('h3', {}, 'Request'), el('p', { class: 'mono' }, f.request.method + ' ' + f.request.uri + ' ' + f.request.version), headersTable(f.request.headers)) : '',
    f.response ? el('div', {}, el('h3', {}, 'Response'), el('p', {}, String(f.response.status) + ' from ' + f.response.source), headersTable(f.response.headers),
      f.response.body_excerpt ? el('pre', { id: 'body-excerpt' }, f.response.body_excerpt) : '') : '',
    el('details', {}, el('summary', {}, 'Every recorded fact (JSON)'), el('pre', {}, JSON.stringify(f, null, 2))));
}

// ---- two flows compared ----

async function compareView(a, b) {
  show(el('p', { class: 'muted' }, 'Comparing…'));
  let d;
  try { d = await getJson('/api/diff?a=' + encodeURIComponent(a) + '&b=' + encodeURIComponent(b)); } catch (e) { show(el('p', {}, e.message)); return; }
  const side = (n, s) => el('p', {}, el('b', {}, n + ': '), el('a', { href: '#/flow/' + (n === 'A' ? a : b) }, s.record + ' (connection ' + s.connection_id + ')'));
  const table = (pairs, mark) => el('table', {},
    el('tr', {}, el('th', {}, 'fact'), el('th', {}, 'A'), el('th', {}, 'B')),
    pairs.map(p => el('tr', { class: mark && p.a !== p.b ? 'diff-row' : '' }, el('td', { class: 'mono' }, p.fact), el('td', {}, p.a), el('td', {}, p.b))));
  show(
    el('h2', {}, 'Two flows compared'),
    side('A', d.a), side('B', d.b),
    el('h3', { id: 'differences' }, 'Differences (' + d.differences.length + ')'),
    d.differences.length ? table(d.differences, false) : el('p', {}, 'No differences in the recorded facts.'),
    el('h3', {}, 'Every fact, side by side'),
    table(d.facts, true));
}

// ---- routing and the live stream ----

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  if (parts[0] === 'flow' && parts[1]) flowView(parts[1]);
  else if (parts[0] === 'compare' && parts[1] && parts[2]) compareView(parts[1], parts[2]);
  else listView();
}

function connect() {
  const es = new EventSource('/api/events');
  const conn = document.getElementById('conn');
  es.onopen = () => { conn.textContent = 'live'; };
  es.onerror = () => { conn.textContent = 'reconnecting…'; };
  es.addEventListener('flows', ev => {
    for (const r of JSON.parse(ev.data)) flows.set(r.id, r);
    markDirty();
  });
  es.addEventListener('stats', ev => {
    const s = JSON.parse(ev.data);
    // Flows that fell out of memory leave the list too (they stay in the recording).
    for (const id of flows.keys()) { if (flows.size <= s.kept) break; flows.delete(id); }
    const held = s.in_memory !== undefined && s.in_memory < s.kept
      ? ' (' + s.in_memory + ' in memory, the older ones read back from the recording)' : '';
    document.getElementById('stats').textContent = s.kept + ' flows listed (max ' + s.max + ')' + held +
      (s.evicted ? ', ' + s.evicted + ' older ones only in the recording' +
        (s.readable ? ' (' + s.readable + ' of them open by number: #/flow/N)' : '') : '') +
      (s.dropped ? ', ' + s.dropped + ' not shown: the view fell behind the relay' : '');
  });
}

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', async () => {
  let s = null;
  try { s = await getJson('/api/stats'); } catch (e) { /* the live stream reports the state */ }
  if (s && s.source === 'file') {
    fileMode = true;
    document.getElementById('conn').textContent = 'recording';
    document.getElementById('stats').textContent = s.records + ' records, read from the file on demand';
  } else {
    connect();
  }
  route();
});
