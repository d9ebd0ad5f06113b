'use strict';
// The hookbridge event inspector. Every value shown comes from webhooks,
// that is from anyone on the internet: it is only ever put in the page as
// text (textContent, text nodes, setAttribute of inert attributes), never
// parsed as HTML.
(() => {
  const TOKEN_KEY = 'hookbridge.inspector.token';
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);

  let token = '';
  let selectedKey = '';
  let openDead = new Set(); // dead letters whose details are shown
  const deadBodies = new Map(); // key → the dead letter with its body, fetched when shown
  let timer = 0;
  let busy = false;

  // The token may arrive once in the URL; keep it for this tab only and
  // take it out of the address bar.
  (function takeToken() {
    const params = new URLSearchParams(location.search);
    if (params.has('token')) {
      token = params.get('token') || '';
      try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* storage off: keep it in memory */ }
      params.delete('token');
      const rest = params.toString();
      history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
    } else {
      try { token = sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { token = ''; }
    }
  })();

  class AuthError extends Error {}

  async function call(method, path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const resp = await fetch(new URL('api/' + path, location.href), {
      method, headers, cache: 'no-store', credentials: 'omit',
    });
    if (resp.status === 401) throw new AuthError('the admin token is missing or wrong');
    let body = {};
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    if (!resp.ok) throw new Error((body && body.error) || (resp.status + ' ' + resp.statusText));
    return body;
  }

  // el builds an element; children are nodes or strings (added as text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function pad(n) { return String(n).padStart(2, '0'); }
  function validTime(s) {
    if (!s || s.startsWith('0001-01-01')) return null;
    const d = new Date(s);
    return isNaN(d.getTime()) ? null : d;
  }
  function fmtTime(s) {
    const d = validTime(s);
    if (!d) return '—';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function timeCell(s) {
    const d = validTime(s);
    return el('td', { class: 'time', title: d ? d.toISOString() : null }, fmtTime(s));
  }
  // timesCell shows an event's own time and, under it, when the bridge got it.
  function timesCell(time, received) {
    const t = validTime(time), r = validTime(received);
    return el('td', { class: 'time', title: 'event time ' + (t ? t.toISOString() : 'unknown') + ', received ' + (r ? r.toISOString() : 'unknown') },
      fmtTime(time), el('span', { class: 'received' }, 'received ' + fmtTime(received)));
  }
  function badge(sink, status) {
    return el('span', { class: 'badge s-' + status, 'data-sink': sink, 'data-status': status, title: sink + ': ' + status },
      sink + ' · ' + status.replace('_', ' '));
  }
  function pretty(value) {
    try { return JSON.stringify(value, null, 2); } catch (_) { return String(value); }
  }

  function setStatus(text, isError) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('error', !!isError);
  }

  function showLogin() {
    $('login').hidden = false;
    $('main').hidden = true;
    $('token').focus();
  }

  // ---- stats -------------------------------------------------------------

  function renderStats(st) {
    const chips = [];
    const pending = st.pending || {};
    const total = Object.values(pending).reduce((a, b) => a + b, 0);
    chips.push(el('span', { class: 'chip' }, 'queued ', el('b', null, String(total))));
    for (const sink of Object.keys(pending).sort()) {
      if (pending[sink] > 0) chips.push(el('span', { class: 'chip' }, sink + ' ', el('b', null, String(pending[sink]))));
    }
    chips.push(el('span', { class: 'chip' + (st.dead_letters > 0 ? ' alert' : '') }, 'dead letters ', el('b', null, String(st.dead_letters || 0))));
    $('stats').replaceChildren(...chips);
  }

  // ---- sinks -------------------------------------------------------------

  const CIRCUIT_TITLES = {
    closed: 'delivering',
    open: 'held: the destination failed; deliveries wait for a probe to get through',
    'half-open': 'a probe is under way; other deliveries wait for its result',
    off: 'no circuit breaker: each delivery retries on its own',
  };

  function fmtAge(seconds) {
    if (typeof seconds !== 'number' || !isFinite(seconds)) return '—';
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }

  function renderSinks(list) {
    const sinks = list.sinks || [];
    const rows = sinks.map((s) => {
      const circuit = String(s.circuit || 'unknown');
      const lag = typeof s.lag === 'number'
        ? el('td', { class: 'num', title: s.lag_measured ? 'measured ' + fmtTime(s.lag_measured) : null }, String(s.lag))
        : el('td', null, '—');
      return el('tr', { class: 'sink-row circuit-' + circuit, 'data-sink': s.name, 'data-circuit': circuit },
        el('td', null, s.name),
        el('td', null, s.type || '—'),
        el('td', null, el('span', { class: 'badge c-' + circuit, title: CIRCUIT_TITLES[circuit] || null }, circuit)),
        el('td', { class: 'num' }, String(s.pending || 0)),
        el('td', { class: 'num', title: s.oldest_pending ? 'accepted ' + fmtTime(s.oldest_pending) : null }, fmtAge(s.oldest_pending_seconds)),
        lag,
        el('td', { class: 'num' }, String(s.delivered || 0)),
        el('td', { class: 'num' }, String(s.failed_attempts || 0)),
        el('td', { class: 'num' }, String(s.dead_lettered || 0)));
    });
    $('sinks').tBodies[0].replaceChildren(...rows);
    $('sinks-empty').hidden = sinks.length > 0;
    $('sinks-empty').textContent = list.note || 'No sink is running.';
    const held = sinks.filter((s) => s.circuit === 'open' || s.circuit === 'half-open').length;
    $('sinks-count').textContent = sinks.length ? '(' + sinks.length + (held ? ', ' + held + ' held' : '') + ')' : '';
  }

  // sinksUnknown stands for the list when the inspector cannot tell it.
  function sinksUnknown(err) {
    if (err instanceof AuthError) throw err;
    return { sinks: [], note: err.message || String(err) };
  }

  // ---- recent events -----------------------------------------------------

  function statusBadges(e) {
    const status = e.status || {};
    const sinks = Object.keys(status);
    const order = (e.sinks || []).concat(sinks.filter((s) => !(e.sinks || []).includes(s)).sort());
    return order.map((s) => badge(s, status[s] || 'pending'));
  }

  function renderEvents(list) {
    const events = list.events || [];
    const rows = events.map((e) => {
      const tr = el('tr', {
        class: 'event-row' + (e.key === selectedKey ? ' selected' : ''),
        'data-key': e.key, 'data-id': e.id, tabindex: '0',
        onclick: () => select(e.key),
        onkeydown: (ev) => { if (ev.key === 'Enter') select(e.key); },
      },
      timesCell(e.time, e.received),
      el('td', null, e.source || '—'),
      el('td', { class: 'mono' }, e.type),
      el('td', { class: 'mono subject' }, e.subject || '—'),
      el('td', { class: 'sinks' }, ...statusBadges(e)));
      return tr;
    });
    $('events').tBodies[0].replaceChildren(...rows);
    $('events-empty').hidden = events.length > 0;
    $('events-count').textContent = events.length ? '(' + events.length + ')' : '';
  }

  async function select(key) {
    selectedKey = key;
    for (const tr of $('events').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.key === key);
    try {
      renderDetail(await call('GET', 'events/' + encodeURIComponent(key)));
    } catch (err) {
      handleError(err);
    }
  }

  function renderDetail(e) {
    const detail = $('detail');
    const meta = el('dl', { class: 'meta' },
      el('dt', null, 'id'), el('dd', { class: 'mono' }, e.id),
      el('dt', null, 'type'), el('dd', { class: 'mono' }, e.type),
      el('dt', null, 'subject'), el('dd', { class: 'mono' }, e.subject || '—'),
      el('dt', null, 'bridge source'), el('dd', null, e.source || '—'),
      el('dt', null, 'time'), el('dd', null, fmtTime(e.time)),
      el('dt', null, 'received'), el('dd', null, fmtTime(e.received)),
      el('dt', null, 'sinks'), el('dd', null, ...statusBadges(e)));

    const attempts = e.attempts || [];
    const attemptTable = attempts.length === 0
      ? el('p', { class: 'empty' }, 'No delivery attempt yet.')
      : el('table', { class: 'attempts' },
        el('thead', null, el('tr', null, el('th', null, 'Sink'), el('th', null, '#'), el('th', null, 'Time'),
          el('th', null, 'Outcome'), el('th', null, 'Error'), el('th', null, 'Dead letter'))),
        el('tbody', null, ...attempts.map((a) => el('tr', { class: 'attempt', 'data-sink': a.sink, 'data-outcome': a.outcome },
          el('td', null, a.sink),
          el('td', null, a.attempt ? String(a.attempt) : '—'),
          timeCell(a.at),
          el('td', null, el('span', { class: 'badge s-' + a.outcome }, a.outcome.replace('_', ' '))),
          el('td', { class: 'reason' }, a.error || ''),
          el('td', null, a.dead_letter || '')))));

    detail.replaceChildren(
      el('h2', null, 'Event'),
      meta,
      el('h3', null, 'Delivery attempts'),
      attemptTable,
      el('h3', null, 'CloudEvent'),
      el('pre', { class: 'cloudevent' }, e.event !== undefined ? pretty(e.event) : '(not kept)'));
  }

  // ---- dead letters ------------------------------------------------------

  async function replay(dl, button) {
    button.disabled = true;
    try {
      const res = await call('POST', 'deadletters/' + encodeURIComponent(dl.key) + '/replay');
      setStatus('replayed to ' + res.sink);
      openDead.delete(dl.key);
      deadBodies.delete(dl.key);
      if (res.event_key) selectedKey = res.event_key;
      await refresh();
    } catch (err) {
      button.disabled = false;
      handleError(err);
    }
  }

  // discard asks for a second click on the same button within a few
  // seconds, then removes the dead letter for good.
  async function discard(dl, button) {
    if (button.dataset.armed !== 'yes') {
      button.dataset.armed = 'yes';
      button.textContent = 'Really discard?';
      button.classList.add('danger');
      setTimeout(() => {
        if (!button.disabled) {
          button.dataset.armed = '';
          button.textContent = 'Discard';
          button.classList.remove('danger');
        }
      }, 4000);
      return;
    }
    button.disabled = true;
    try {
      await call('DELETE', 'deadletters/' + encodeURIComponent(dl.key));
      setStatus('discarded');
      openDead.delete(dl.key);
      deadBodies.delete(dl.key);
      await refresh();
    } catch (err) {
      button.disabled = false;
      handleError(err);
    }
  }

  // toggleDead shows or hides a dead letter's body, fetching it the first
  // time (the list the page polls leaves bodies out).
  async function toggleDead(key, list) {
    if (openDead.has(key)) {
      openDead.delete(key);
    } else {
      if (!deadBodies.has(key)) {
        try {
          deadBodies.set(key, await call('GET', 'deadletters/' + encodeURIComponent(key)));
        } catch (err) {
          handleError(err);
          return;
        }
      }
      openDead.add(key);
    }
    renderDeadLetters(list);
  }

  function deadDetail(dl) {
    let body;
    if (dl.replayable) body = dl.event !== undefined ? pretty(dl.event) : '(unreadable event)';
    else if (dl.raw !== undefined) body = dl.raw;
    else if (dl.raw_base64 !== undefined) body = 'base64: ' + dl.raw_base64;
    else body = '(empty body)';
    const note = dl.raw_truncated ? el('p', { class: 'empty' }, 'First 64 KiB of ' + dl.raw_size + ' bytes.') : null;
    return el('tr', { class: 'dead-detail', 'data-key': dl.key },
      el('td', { colspan: '7' }, el('pre', null, body), note));
  }

  function renderDeadLetters(list) {
    const dls = list.dead_letters || [];
    const rows = [];
    for (const dl of dls) {
      const what = dl.replayable
        ? el('td', null, el('div', { class: 'mono' }, dl.event_type || '?'), el('div', { class: 'mono' }, dl.event_subject || ''))
        : el('td', null, el('span', { class: 'badge' }, 'rejected request'));
      const show = el('button', {
        type: 'button', class: 'show',
        onclick: () => toggleDead(dl.key, list),
      }, openDead.has(dl.key) ? 'Hide' : 'Show');
      const actions = el('td', { class: 'actions' }, show);
      if (dl.replayable) {
        const btn = el('button', { type: 'button', class: 'replay primary', 'data-key': dl.key, title: 'Queue the event again for ' + dl.sink }, 'Replay');
        btn.addEventListener('click', () => replay(dl, btn));
        actions.append(btn);
      }
      const drop = el('button', { type: 'button', class: 'discard', 'data-key': dl.key, title: 'Remove this dead letter for good' }, 'Discard');
      drop.addEventListener('click', () => discard(dl, drop));
      actions.append(drop);
      rows.push(el('tr', { class: 'dead-row', 'data-key': dl.key, 'data-event-id': dl.event_id || null },
        timeCell(dl.at),
        el('td', null, dl.sink || '—', dl.from ? el('div', { class: 'empty' }, 'from ' + dl.from) : null),
        el('td', null, dl.source || '—'),
        what,
        el('td', { class: 'reason' }, dl.reason),
        el('td', null, dl.replayable ? String(dl.attempts || 0) : '—'),
        actions));
      if (openDead.has(dl.key) && deadBodies.has(dl.key)) rows.push(deadDetail(deadBodies.get(dl.key)));
    }
    $('deadletters').tBodies[0].replaceChildren(...rows);
    $('dead-empty').hidden = dls.length > 0;
    $('dead-empty').textContent = list.note || 'No dead letters.';
    $('dead-count').textContent = list.total ? '(' + list.total + ')' : '';
  }

  // ---- refresh -----------------------------------------------------------

  function handleError(err) {
    if (err instanceof AuthError) {
      setStatus(err.message, true);
      showLogin();
      stopPolling();
      return;
    }
    setStatus(err.message || String(err), true);
  }

  // deadLettersElsewhere stands for the list when the queue keeps none (a
  // Kafka queue writes dead letters to a topic): the answer says where.
  function deadLettersElsewhere(err) {
    if (err instanceof AuthError) throw err;
    return { dead_letters: [], total: 0, note: err.message || String(err) };
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const [events, dead, stats, sinks] = await Promise.all([
        call('GET', 'events'), call('GET', 'deadletters?brief=1').catch(deadLettersElsewhere), call('GET', 'stats'),
        call('GET', 'sinks').catch(sinksUnknown)]);
      renderSinks(sinks);
      renderEvents(events);
      renderDeadLetters(dead);
      renderStats(stats);
      if (selectedKey) {
        try {
          renderDetail(await call('GET', 'events/' + encodeURIComponent(selectedKey)));
        } catch (err) {
          if (err instanceof AuthError) throw err;
          selectedKey = ''; // forgotten by the recorder
        }
      }
      setStatus('updated ' + fmtTime(new Date().toISOString()).slice(11));
    } catch (err) {
      handleError(err);
    } finally {
      busy = false;
    }
  }

  function startPolling() {
    stopPolling();
    if ($('auto').checked && $('login').hidden) timer = setInterval(refresh, POLL_MS);
  }
  function stopPolling() {
    if (timer) clearInterval(timer);
    timer = 0;
  }

  $('refresh').addEventListener('click', refresh);
  $('auto').addEventListener('change', startPolling);
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token').value;
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* memory only */ }
    $('login').hidden = true;
    $('main').hidden = false;
    refresh().then(startPolling);
  });

  refresh().then(startPolling);
})();
