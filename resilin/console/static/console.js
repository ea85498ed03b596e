// Resilin web console: browser side. Vanilla ES2020, no dependencies.
// All data is rendered with createElement/textContent (never innerHTML).
'use strict';

(() => {
  const ACTIVE_STATES = ['STARTING', 'BOOTSTRAPPING', 'RUNNING', 'WAITING', 'TERMINATING'];
  const CLUSTER_STATES = [...ACTIVE_STATES, 'TERMINATED', 'TERMINATED_WITH_ERRORS'];
  const FINAL_CLUSTER = new Set(['TERMINATED', 'TERMINATED_WITH_ERRORS']);
  const FINAL_STEP = new Set(['COMPLETED', 'CANCELLED', 'FAILED', 'INTERRUPTED']);
  const LOG_NAMES = ['controller', 'stdout', 'stderr', 'syslog'];
  const POLL_MS = 2000;
  const SVGNS = 'http://www.w3.org/2000/svg';

  const S = {
    session: null,
    token: 0, // incremented on every route change; stale async work checks it
    timers: new Set(),
    errors: new Map(),
    filters: { state: '', after: '', before: '' },
    extras: new Map(), // cluster id -> {describe, details, final}
  };

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  // ---------------------------------------------------------------- DOM helpers

  function h(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
        else if (typeof v === 'boolean') e[k] = v;
        else e.setAttribute(k, String(v));
      }
    }
    for (const c of children.flat()) {
      if (c == null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) if (v != null) e.setAttribute(k, String(v));
    }
    if (text != null) e.textContent = String(text);
    return e;
  }

  function setText(el, text) {
    const t = text == null ? '' : String(text);
    if (el.textContent !== t) el.textContent = t;
  }

  // Element whose textContent is exactly the state, coloured through classes.
  function setState(el, st, base) {
    const s = st || '';
    setText(el, s);
    const cls = (base ? base + ' ' : '') + (s ? 'badge state-' + s : '');
    if (el.className !== cls) el.className = cls;
  }

  function card(title, ...children) {
    return h('div', { class: 'card' }, title ? h('h3', null, title) : null, ...children);
  }

  // Update rows of a tbody in place: rows are keyed by attribute `attr`.
  function syncRows(tbody, items, keyOf, attr, create, update) {
    const existing = new Map();
    for (const tr of Array.from(tbody.rows)) existing.set(tr.getAttribute(attr), tr);
    let prev = null;
    for (const item of items) {
      const key = String(keyOf(item));
      let tr = existing.get(key);
      if (tr) existing.delete(key);
      else {
        tr = create(item);
        tr.setAttribute(attr, key);
      }
      update(tr, item);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of existing.values()) tr.remove();
  }

  // ---------------------------------------------------------------- formatting

  const pad = (n) => String(n).padStart(2, '0');

  function toEpoch(v) {
    if (v == null || v === '') return null;
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    const n = Number(v);
    if (Number.isFinite(n)) return n;
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t / 1000;
  }

  const nowSec = () => Date.now() / 1000;

  function fmtTime(v) {
    const t = toEpoch(v);
    if (t == null) return '';
    const d = new Date(t * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtDuration(sec) {
    if (sec == null || !Number.isFinite(sec)) return '';
    const s = Math.max(0, Math.floor(sec));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  }

  function span(start, end) {
    const a = toEpoch(start);
    if (a == null) return '';
    const b = toEpoch(end);
    return fmtDuration((b == null ? nowSec() : b) - a);
  }

  function fmtApps(apps) {
    return (apps || []).map((a) => (a.Version ? `${a.Name} ${a.Version}` : a.Name)).join(', ');
  }

  function truncate(s, n) {
    const t = String(s == null ? '' : s);
    return t.length > n ? t.slice(0, n - 1) + '…' : t;
  }

  // Split "a b \"c d\"" into arguments; supports double and single quotes and backslash escapes.
  function splitArgs(text) {
    const out = [];
    let cur = '';
    let started = false;
    let quote = null;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (quote) {
        if (ch === quote) quote = null;
        else if (ch === '\\' && quote === '"' && (text[i + 1] === '"' || text[i + 1] === '\\')) cur += text[++i];
        else cur += ch;
      } else if (ch === '"' || ch === "'") {
        quote = ch;
        started = true;
      } else if (/\s/.test(ch)) {
        if (started) out.push(cur);
        cur = '';
        started = false;
      } else if (ch === '\\' && i + 1 < text.length && /[\s"'\\]/.test(text[i + 1])) {
        cur += text[++i];
        started = true;
      } else {
        cur += ch;
        started = true;
      }
    }
    if (quote) throw new Error('Unterminated quote in arguments.');
    if (started) out.push(cur);
    return out;
  }

  function shellQuote(v) {
    const s = String(v == null ? '' : v);
    if (s !== '' && /^[A-Za-z0-9_\-.\/:=,@+%]+$/.test(s)) return s;
    return "'" + s.replace(/'/g, "'\\''") + "'";
  }

  // Value inside AWS CLI shorthand syntax (Key=value,...).
  function shorthandValue(v) {
    const s = String(v == null ? '' : v);
    if (s !== '' && /^[^\s,=[\]{}"'\\]+$/.test(s)) return s;
    return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  }

  function shorthand(pairs) {
    return pairs
      .filter(([, v]) => v != null && v !== '')
      .map(([k, v]) => (Array.isArray(v)
        ? `${k}=[${v.map(shorthandValue).join(',')}]`
        : `${k}=${shorthandValue(v)}`))
      .join(',');
  }

  // ---------------------------------------------------------------- errors and banner

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const errText = (e) => (e && e.message ? e.message : String(e));

  function renderBanner() {
    const b = $('error-banner');
    const msgs = [...new Set(S.errors.values())];
    setText(b, msgs.join(' · '));
    b.hidden = msgs.length === 0;
  }

  function setError(key, e) {
    S.errors.set(key, errText(e));
    renderBanner();
  }

  function clearError(key) {
    if (S.errors.delete(key)) renderBanner();
  }

  // ---------------------------------------------------------------- HTTP

  async function request(method, url, body) {
    const headers = { Accept: 'application/json' };
    if (S.session && S.session.CsrfToken) headers['X-Csrf-Token'] = S.session.CsrfToken;
    const init = { method, credentials: 'same-origin', headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(url, init);
    } catch (e) {
      throw new ApiError(0, 'NetworkError', `Cannot reach the server (${errText(e)}).`);
    }
    if (resp.status === 204) return null;
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!resp.ok) {
      const code = (data && data.__type) || `HTTP${resp.status}`;
      const msg = (data && (data.message || data.Message)) || `${resp.status} ${resp.statusText || 'error'}`;
      const err = new ApiError(resp.status, code, msg);
      if (resp.status === 401 && url !== '/session') {
        err.sessionEnded = true;
        sessionEnded();
      }
      throw err;
    }
    return data == null ? {} : data;
  }

  const api = (op, params) => request('POST', '/api/' + op, params || {});

  async function apiAll(op, params, key, maxPages = 50) {
    let out = [];
    let marker = null;
    for (let i = 0; i < maxPages; i++) {
      const p = Object.assign({}, params);
      if (marker) p.Marker = marker;
      const r = await api(op, p);
      out = out.concat(r[key] || []);
      marker = r.Marker;
      if (!marker) break;
    }
    return out;
  }

  // ---------------------------------------------------------------- timers and polling

  function later(fn, ms) {
    const id = setTimeout(() => {
      S.timers.delete(id);
      fn();
    }, ms);
    S.timers.add(id);
    return id;
  }

  function stopAll() {
    for (const id of S.timers) clearTimeout(id);
    S.timers.clear();
    S.token++;
    unobservePlots();
    S.errors.clear();
    renderBanner();
  }

  // Run fn now and every `ms` after it finishes, until the route changes or fn returns 'stop'.
  function poll(key, fn, ms = POLL_MS) {
    const token = S.token;
    let timer = null;
    let running = false;
    let again = false;
    let stopped = false;
    const alive = () => !stopped && token === S.token;
    async function run() {
      timer = null;
      if (!alive()) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      let result;
      try {
        result = await fn(alive);
        if (alive()) clearError(key);
      } catch (e) {
        if (alive() && !e.sessionEnded) setError(key, e);
        if (e && e.stopPolling) result = 'stop'; // nothing more to ask for: keep the error shown
      }
      running = false;
      if (!alive()) return;
      if (result === 'stop' && !again) {
        stopped = true;
        return;
      }
      if (again) {
        again = false;
        run();
        return;
      }
      timer = later(run, ms);
    }
    run();
    return {
      alive,
      now() {
        if (timer) {
          clearTimeout(timer);
          S.timers.delete(timer);
          timer = null;
        }
        stopped = false;
        run();
      },
    };
  }

  // ---------------------------------------------------------------- session

  function showSignIn(message) {
    stopAll();
    S.session = null;
    $('content').replaceChildren();
    $('content').hidden = true;
    $('header').hidden = true;
    setText($('account'), '');
    $('signin').hidden = false;
    setText($('signin-error'), message || '');
    document.title = 'Sign in · Resilin console';
    $('access-key').focus();
  }

  function sessionEnded() {
    if (!S.session) return;
    showSignIn('Your session has ended. Please sign in again.');
  }

  function setSession(s) {
    S.session = s;
    $('signin').hidden = true;
    setText($('signin-error'), '');
    setText($('account'), s.AccountId || '');
    $('header').hidden = false;
    $('content').hidden = false;
    route();
  }

  async function onSignIn(ev) {
    ev.preventDefault();
    const keyInput = $('access-key');
    const secretInput = $('secret-key');
    const button = $('signin-button');
    setText($('signin-error'), '');
    button.disabled = true;
    const pending = request('POST', '/session', {
      AccessKeyId: keyInput.value.trim(),
      SecretAccessKey: secretInput.value,
    });
    secretInput.value = '';
    try {
      setSession(await pending);
    } catch (e) {
      setText($('signin-error'), errText(e));
      secretInput.focus();
    } finally {
      button.disabled = false;
    }
  }

  async function onSignOut() {
    try {
      await request('DELETE', '/session');
    } catch (e) {
      // Signed out locally in any case.
    }
    showSignIn();
  }

  // ---------------------------------------------------------------- routing

  function route() {
    stopAll();
    if (!S.session) {
      showSignIn();
      return;
    }
    const hash = location.hash || '#/clusters';
    let m;
    let nav = 'clusters';
    if ((m = hash.match(/^#\/cluster\/([^/]+)\/step\/([^/]+)\/?$/))) {
      renderStep(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
    } else if ((m = hash.match(/^#\/cluster\/([^/]+)\/?$/))) {
      renderCluster(decodeURIComponent(m[1]));
    } else if (hash === '#/clouds') {
      nav = 'clouds';
      renderClouds();
    } else {
      renderClusters();
    }
    $('nav-clusters').classList.toggle('active', nav === 'clusters');
    $('nav-clouds').classList.toggle('active', nav === 'clouds');
    window.scrollTo(0, 0);
  }

  // ---------------------------------------------------------------- charts

  // Plots are as wide as their card: measured at draw time, redrawn when the card changes width.
  const PLOT_W = 900;
  const PLOT_MIN_W = 360;
  let plotObserver = null;

  function plotWidth(svg) {
    const box = svg.parentNode;
    if (!box || !box.isConnected || !box.clientWidth) return PLOT_W;
    const cs = window.getComputedStyle(box);
    const w = box.clientWidth - (parseFloat(cs.paddingLeft) || 0) - (parseFloat(cs.paddingRight) || 0);
    return w > 0 ? Math.max(PLOT_MIN_W, Math.floor(w)) : PLOT_W;
  }

  function observePlot(svg) {
    const box = svg.parentNode;
    if (!box || svg._observed || typeof ResizeObserver !== 'function') return;
    if (!plotObserver) {
      plotObserver = new ResizeObserver((entries) => {
        const plots = entries.filter((en) => en.contentRect.width > 0).flatMap((en) => [...(en.target._plots || [])]);
        // Redrawn in the next frame, outside of the observer's own notification.
        window.requestAnimationFrame(() => {
          for (const plot of plots) {
            if (plot.isConnected && plot._redraw && plotWidth(plot) !== plot._drawnW) plot._redraw();
          }
        });
      });
    }
    svg._observed = true;
    if (!box._plots) {
      box._plots = new Set();
      plotObserver.observe(box);
    }
    box._plots.add(svg);
  }

  function unobservePlots() {
    if (plotObserver) plotObserver.disconnect();
    plotObserver = null;
  }

  function resetSvg(svg, w, hgt) {
    svg.replaceChildren();
    svg.setAttribute('width', w);
    svg.setAttribute('height', hgt);
    svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
    svg._drawnW = w;
    observePlot(svg);
  }

  function svgMessage(svg, msg) {
    const W = plotWidth(svg);
    resetSvg(svg, W, 48);
    svg.append(svgEl('text', { x: W / 2, y: 28, 'text-anchor': 'middle', class: 'plot-empty' }, msg));
    svg._redraw = () => svgMessage(svg, msg);
  }

  function timeTicks(t0, t1, maxTicks) {
    const total = Math.max(1, t1 - t0);
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
      21600, 43200, 86400, 172800, 604800];
    const step = steps.find((s) => total / s <= maxTicks) || Math.ceil(total / maxTicks / 86400) * 86400;
    const off = new Date(t0 * 1000).getTimezoneOffset() * 60; // seconds, UTC minus local
    const local0 = t0 - off;
    const ticks = [];
    for (let t = Math.ceil(local0 / step) * step + off; t <= t1 + 1e-6; t += step) ticks.push(t);
    return { ticks, step };
  }

  function tickLabel(t, step) {
    const d = new Date(t * 1000);
    if (step >= 86400) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    if (step >= 60) return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function drawTimeAxis(svg, x0, x1, y, t0, t1, gridTop) {
    const sx = (t) => x0 + ((t - t0) / (t1 - t0)) * (x1 - x0);
    const { ticks, step } = timeTicks(t0, t1, Math.max(2, Math.floor((x1 - x0) / 100)));
    for (const t of ticks) {
      const x = sx(t);
      if (gridTop != null) svg.append(svgEl('line', { x1: x, x2: x, y1: gridTop, y2: y, class: 'grid' }));
      svg.append(svgEl('line', { x1: x, x2: x, y1: y, y2: y + 4, class: 'axis' }));
      svg.append(svgEl('text', { x, y: y + 16, 'text-anchor': 'middle', class: 'tick' }, tickLabel(t, step)));
    }
    svg.append(svgEl('line', { x1: x0, x2: x1, y1: y, y2: y, class: 'axis' }));
    svg.append(svgEl('text', { x: x1, y: y + 30, 'text-anchor': 'end', class: 'axis-label' }, 'local time'));
  }

  // Width of a label column for the given labels (12px text), within the plot's bounds.
  function labelWidth(labels, W) {
    const longest = Math.max(0, ...labels.map((l) => String(l).length));
    return Math.round(Math.min(Math.max(120, longest * 7 + 20), W * 0.45));
  }

  // lanes: [{label, title, state, spans: [{start, end, title, marker}]}]; a marker span is an instant.
  function drawGantt(svg, lanes) {
    const W = plotWidth(svg);
    const x0 = labelWidth(lanes.map((l) => l.label), W);
    const x1 = W - 20;
    const rowH = 22;
    const top = 8;
    const spans = lanes.flatMap((l) => l.spans);
    const t0 = Math.min(...spans.map((s) => s.start));
    let t1 = Math.max(...spans.map((s) => s.end));
    if (t1 - t0 < 1) t1 = t0 + 1;
    const axisY = top + lanes.length * rowH + 4;
    resetSvg(svg, W, Math.max(100, axisY + 36));
    const sx = (t) => x0 + ((t - t0) / (t1 - t0)) * (x1 - x0);
    drawTimeAxis(svg, x0, x1, axisY, t0, t1, top);
    lanes.forEach((lane, i) => {
      const y = top + i * rowH;
      const label = svgEl('text', { x: x0 - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end', class: 'plot-label' }, lane.label);
      if (lane.title) label.append(svgEl('title', null, lane.title));
      svg.append(label);
      for (const s of lane.spans) {
        const bx = sx(s.start);
        let shape;
        if (s.marker) {
          const cy = y + rowH / 2;
          const r = (rowH - 6) / 2;
          shape = svgEl('path', {
            d: `M${bx.toFixed(1)},${cy - r} l${r},${r} l${-r},${r} l${-r},${-r} Z`,
            class: 'bar marker state-' + lane.state,
          });
        } else {
          shape = svgEl('rect', {
            x: bx.toFixed(1), y: y + 3, width: Math.max(2, sx(s.end) - bx).toFixed(1), height: rowH - 6, rx: 2,
            class: 'bar state-' + lane.state,
          });
        }
        if (s.title) shape.append(svgEl('title', null, s.title));
        svg.append(shape);
      }
    });
  }

  // One lane per state, in order of first appearance, holding every interval spent in that state.
  function drawPhases(svg, history) {
    svg._redraw = () => drawPhases(svg, history);
    const hist = (history || []).filter((e) => toEpoch(e.Start) != null);
    if (!hist.length) {
      svgMessage(svg, 'No state history yet.');
      svg._redraw = () => drawPhases(svg, history);
      return;
    }
    const now = nowSec();
    const lanes = new Map();
    hist.forEach((e, i) => {
      const start = toEpoch(e.Start);
      const final = FINAL_CLUSTER.has(e.State);
      const next = i + 1 < hist.length ? toEpoch(hist[i + 1].Start) : null;
      const end = next != null ? Math.max(start, next) : (final ? start : Math.max(start, now));
      let lane = lanes.get(e.State);
      if (!lane) {
        lane = { state: e.State, final, total: 0, at: start, spans: [] };
        lanes.set(e.State, lane);
      }
      if (final) {
        lane.at = start;
        lane.spans.push({ start, end: start, marker: true, title: `${e.State} at ${fmtTime(start)}` });
      } else {
        const dur = fmtDuration(end - start);
        lane.total += end - start;
        lane.spans.push({
          start, end, title: `${e.State}: ${fmtTime(start)} – ${fmtTime(end)}${next == null ? ' (ongoing)' : ''} (${dur})`,
        });
      }
    });
    const rows = [...lanes.values()].map((l) => {
      const times = l.spans.length > 1 ? ` in ${l.spans.length} periods` : '';
      return Object.assign(l, l.final
        ? { label: `${l.state} at ${fmtTime(l.at).slice(11)}`, title: `${l.state} at ${fmtTime(l.at)}` }
        : { label: `${l.state} ${fmtDuration(l.total)}`, title: `${l.state}: ${fmtDuration(l.total)}${times}` });
    });
    drawGantt(svg, rows);
  }

  function drawSteps(svg, steps) {
    svg._redraw = () => drawSteps(svg, steps);
    const now = nowSec();
    const started = steps
      .filter((s) => toEpoch(s.Status && s.Status.Timeline && s.Status.Timeline.StartDateTime) != null)
      .map((s) => {
        const tl = s.Status.Timeline;
        const start = toEpoch(tl.StartDateTime);
        const endT = toEpoch(tl.EndDateTime);
        const end = endT == null ? Math.max(start, now) : endT;
        return { s, start, end };
      })
      .sort((a, b) => a.start - b.start)
      .slice(-20);
    if (!started.length) {
      svgMessage(svg, 'No step has started yet.');
      svg._redraw = () => drawSteps(svg, steps);
      return;
    }
    const lanes = started.map(({ s, start, end }) => {
      const title = `${s.Name} (${s.Id}) ${s.Status.State}: ${fmtDuration(end - start)}`;
      return {
        state: s.Status.State,
        label: `${truncate(s.Name || s.Id, 26)} ${fmtDuration(end - start)}`,
        title,
        spans: [{ start, end, title }],
      };
    });
    drawGantt(svg, lanes);
  }

  function drawInstances(svg, instances, cluster) {
    svg._redraw = () => drawInstances(svg, instances, cluster);
    const events = [];
    for (const inst of instances || []) {
      const tl = (inst.Status && inst.Status.Timeline) || {};
      const c = toEpoch(tl.CreationDateTime);
      if (c == null) continue;
      events.push([c, 1]);
      const e = toEpoch(tl.EndDateTime);
      if (e != null) events.push([Math.max(c, e), -1]);
    }
    if (!events.length) {
      svgMessage(svg, 'No instances yet.');
      svg._redraw = () => drawInstances(svg, instances, cluster);
      return;
    }
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const ctl = (cluster && cluster.Status && cluster.Status.Timeline) || {};
    const created = toEpoch(ctl.CreationDateTime);
    const ended = toEpoch(ctl.EndDateTime);
    const t0 = Math.min(events[0][0], created == null ? Infinity : created);
    let t1 = Math.max(events[events.length - 1][0], ended == null ? nowSec() : ended);
    if (t1 - t0 < 1) t1 = t0 + 1;
    const pts = [[t0, 0]];
    let n = 0;
    let max = 0;
    for (const [t, d] of events) {
      pts.push([t, n]);
      n += d;
      max = Math.max(max, n);
      pts.push([t, n]);
    }
    pts.push([t1, n]);

    const W = plotWidth(svg);
    const H = 170;
    const L = 56;
    const R = 20;
    const T = 10;
    const B = 40;
    const ystep = Math.max(1, Math.ceil(Math.max(1, max) / 4));
    const ymax = Math.max(ystep, Math.ceil(Math.max(1, max) / ystep) * ystep);
    const sx = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const sy = (v) => T + (1 - v / ymax) * (H - T - B);
    resetSvg(svg, W, H);
    for (let v = 0; v <= ymax; v += ystep) {
      const y = sy(v);
      svg.append(svgEl('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
      svg.append(svgEl('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, v));
    }
    svg.append(svgEl('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
    drawTimeAxis(svg, L, W - R, H - B, t0, t1, null);
    const line = pts.map(([t, v], i) => `${i ? 'L' : 'M'}${sx(t).toFixed(1)},${sy(v).toFixed(1)}`).join(' ');
    svg.append(svgEl('path', { d: `${line} L${sx(t1).toFixed(1)},${sy(0)} L${sx(t0).toFixed(1)},${sy(0)} Z`, class: 'area' }));
    svg.append(svgEl('path', { d: line, class: 'step-line' }));
    svg.append(svgEl('text', {
      x: -(T + (H - T - B) / 2), y: 14, transform: 'rotate(-90)', 'text-anchor': 'middle', class: 'axis-label',
    }, 'running instances'));
    svg.append(svgEl('text', { x: W - R, y: T + 12, 'text-anchor': 'end', class: 'plot-label' }, `now: ${n}, peak: ${max}`));
  }

  // ---------------------------------------------------------------- clusters list

  function dayStart(value, plusDays) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value || '');
    if (!m) return null;
    return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + (plusDays || 0)).getTime() / 1000;
  }

  async function loadExtras(c) {
    const cached = S.extras.get(c.Id);
    const final = FINAL_CLUSTER.has(c.Status && c.Status.State);
    if (cached && cached.final) return cached;
    const [d, det] = await Promise.allSettled([
      api('DescribeCluster', { ClusterId: c.Id }),
      request('GET', '/details/' + enc(c.Id)),
    ]);
    const entry = {
      describe: d.status === 'fulfilled' ? d.value.Cluster : cached && cached.describe,
      details: det.status === 'fulfilled' ? det.value : cached && cached.details,
      final: final && d.status === 'fulfilled' && det.status === 'fulfilled',
    };
    S.extras.set(c.Id, entry);
    if (d.status === 'rejected') throw d.reason;
    if (det.status === 'rejected') throw det.reason;
    return entry;
  }

  function renderClusters() {
    document.title = 'Clusters · Resilin console';
    const f = S.filters;
    const stateSel = h('select', { id: 'state-filter' },
      h('option', { value: '' }, 'All'),
      h('option', { value: 'active' }, 'Active'),
      CLUSTER_STATES.map((s) => h('option', { value: s }, s)));
    stateSel.value = f.state;
    const after = h('input', { id: 'created-after', type: 'date', value: f.after });
    const before = h('input', { id: 'created-before', type: 'date', value: f.before });
    const updated = h('span', { class: 'updated muted' });
    const cols = ['Name / ID', 'State', 'State reason', 'Release', 'Applications', 'Clouds',
      'Norm. hours', 'Created', 'Ready', 'Elapsed'];
    const tbody = h('tbody');
    const table = h('table', { id: 'clusters-table', class: 'grid' },
      h('thead', null, h('tr', null, cols.map((c) => h('th', null, c)))), tbody);
    const empty = h('p', { id: 'clusters-empty', class: 'muted', hidden: true }, 'No clusters match these filters.');
    const section = h('section', { id: 'clusters-page' },
      h('div', { class: 'page-head' }, h('h2', null, 'Clusters'), updated),
      h('div', { class: 'filters' },
        h('label', null, 'State ', stateSel),
        h('label', null, 'Created after ', after),
        h('label', null, 'Created before ', before)),
      h('div', { class: 'card table-wrap' }, table, empty));
    $('content').replaceChildren(section);

    const createRow = (c) => {
      const link = h('a', { class: 'cluster-link', href: '#/cluster/' + enc(c.Id) });
      const idDiv = h('div', { class: 'sub mono' });
      const cells = {
        link,
        idDiv,
        name: h('td', { class: 'name' }, link, idDiv),
        state: h('td', { class: 'state' }),
        reason: h('td', { class: 'reason' }),
        release: h('td', { class: 'release' }),
        applications: h('td', { class: 'applications' }),
        clouds: h('td', { class: 'clouds' }),
        hours: h('td', { class: 'hours num' }),
        created: h('td', { class: 'created nowrap' }),
        ready: h('td', { class: 'ready nowrap' }),
        elapsed: h('td', { class: 'elapsed nowrap' }),
      };
      const tr = h('tr', null, cells.name, cells.state, cells.reason, cells.release, cells.applications,
        cells.clouds, cells.hours, cells.created, cells.ready, cells.elapsed);
      tr._cells = cells;
      return tr;
    };
    const updateRow = (tr, c) => {
      const x = tr._cells;
      const st = c.Status || {};
      const tl = st.Timeline || {};
      const extra = S.extras.get(c.Id) || {};
      const d = extra.describe || {};
      const det = extra.details || {};
      setText(x.link, c.Name || c.Id);
      setText(x.idDiv, c.Id);
      setState(x.state, st.State, 'state');
      setText(x.reason, (st.StateChangeReason && st.StateChangeReason.Message) || '');
      setText(x.release, d.ReleaseLabel || '');
      setText(x.applications, fmtApps(d.Applications));
      setText(x.clouds, (det.Clouds || []).join(', '));
      setText(x.hours, c.NormalizedInstanceHours == null ? '' : c.NormalizedInstanceHours);
      setText(x.created, fmtTime(tl.CreationDateTime));
      setText(x.ready, fmtTime(tl.ReadyDateTime));
      setText(x.elapsed, span(tl.CreationDateTime, tl.EndDateTime));
    };
    const render = (clusters) => {
      syncRows(tbody, clusters, (c) => c.Id, 'data-cluster-id', createRow, updateRow);
      empty.hidden = clusters.length > 0;
      setText(updated, 'Updated ' + fmtTime(nowSec()).slice(11));
    };

    const poller = poll('clusters', async (alive) => {
      const params = {};
      if (f.state === 'active') params.ClusterStates = ACTIVE_STATES.slice();
      else if (f.state) params.ClusterStates = [f.state];
      const a = dayStart(f.after, 0);
      const b = dayStart(f.before, 1); // inclusive: up to the end of that day
      if (a != null) params.CreatedAfter = a;
      if (b != null) params.CreatedBefore = b;
      const asked = JSON.stringify(f);
      const stale = () => !alive() || JSON.stringify(f) !== asked; // filters changed meanwhile
      const clusters = await apiAll('ListClusters', params, 'Clusters', 20);
      if (stale()) return;
      render(clusters);
      const results = await Promise.allSettled(clusters.map(loadExtras));
      if (stale()) return;
      render(clusters);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    });
    const onFilter = () => {
      f.state = stateSel.value;
      f.after = after.value;
      f.before = before.value;
      poller.now();
    };
    stateSel.addEventListener('change', onFilter);
    after.addEventListener('change', onFilter);
    before.addEventListener('change', onFilter);
  }

  // ---------------------------------------------------------------- cluster page

  function buildCloneCommand(c, groups, bootstraps, steps) {
    const lines = [['aws', 'emr', 'create-cluster'], ['--endpoint-url', '"$RESILIN_ENDPOINT"']];
    lines.push(['--name', shellQuote(c.Name || c.Id)]);
    if (c.ReleaseLabel) lines.push(['--release-label', shellQuote(c.ReleaseLabel)]);
    if (c.Applications && c.Applications.length) {
      lines.push(['--applications', ...c.Applications.map((a) => shellQuote(shorthand([['Name', a.Name]])))]);
    }
    if (groups.length) {
      const order = { MASTER: 0, CORE: 1, TASK: 2 };
      const sorted = groups.slice().sort((a, b) => (order[a.InstanceGroupType] ?? 3) - (order[b.InstanceGroupType] ?? 3));
      lines.push(['--instance-groups', ...sorted.map((g) => shellQuote(shorthand([
        ['InstanceGroupType', g.InstanceGroupType],
        ['InstanceCount', g.RequestedInstanceCount],
        ['InstanceType', g.InstanceType],
        ['Name', g.Name],
        ['BidPrice', g.Market === 'SPOT' ? g.BidPrice : null],
      ])))]);
    }
    if (c.LogUri) lines.push(['--log-uri', shellQuote(c.LogUri)]);
    if (bootstraps.length) {
      lines.push(['--bootstrap-actions', ...bootstraps.map((b) => shellQuote(shorthand([
        ['Path', b.ScriptPath],
        ['Args', b.Args && b.Args.length ? b.Args : null],
        ['Name', b.Name],
      ])))]);
    }
    if (steps.length) {
      lines.push(['--steps', ...steps.map((s) => {
        const cfg = s.Config || {};
        return shellQuote(shorthand([
          ['Type', 'CUSTOM_JAR'],
          ['Name', s.Name],
          ['ActionOnFailure', s.ActionOnFailure],
          ['Jar', cfg.Jar],
          ['MainClass', cfg.MainClass],
          ['Args', cfg.Args && cfg.Args.length ? cfg.Args : null],
        ]));
      })]);
    }
    if (c.Tags && c.Tags.length) {
      lines.push(['--tags', ...c.Tags.map((t) => shellQuote(`${t.Key}=${t.Value == null ? '' : t.Value}`))]);
    }
    if (c.Configurations && c.Configurations.length) {
      lines.push(['--configurations', "'" + JSON.stringify(c.Configurations).replace(/'/g, "'\\''") + "'"]);
    }
    lines.push([c.AutoTerminate ? '--auto-terminate' : '--no-auto-terminate']);
    if (c.TerminationProtected) lines.push(['--termination-protected']);
    return lines.map((l) => l.join(' ')).join(' \\\n  ');
  }

  function renderCluster(cid) {
    document.title = `${cid} · Resilin console`;
    const data = { cluster: null, details: null, groups: [], instances: [], steps: [], bootstraps: null };
    let poller = null;
    let ended = false; // TERMINATED or TERMINATED_WITH_ERRORS: nothing left to change
    const pending = new Set(); // controls disabled while their request runs

    // --- header and actions
    const title = h('span', null, cid);
    const message = h('p', { id: 'action-message', role: 'status' });
    const showAction = (text, isError) => {
      setText(message, text);
      message.className = isError ? 'msg-error' : 'msg-ok';
    };
    const terminateBtn = h('button', { id: 'terminate-button', type: 'button', class: 'danger' }, 'Terminate');
    const protectionBtn = h('button', { id: 'protection-button', type: 'button', disabled: true },
      'Termination protection');
    const cloneBtn = h('button', { id: 'clone-button', type: 'button' }, 'Clone as CLI command');
    const endedNote = h('span', { id: 'cluster-ended', class: 'ended-note muted', hidden: true },
      'This cluster has ended.');
    const cloneCmd = h('pre', { id: 'clone-command' });
    const copyBtn = h('button', { id: 'clone-copy', type: 'button' }, 'Copy');
    const cloneBox = h('div', { class: 'card clone-box', hidden: true },
      h('div', { class: 'row' }, h('h3', null, 'Equivalent AWS CLI command'), copyBtn), cloneCmd);
    cloneCmd.hidden = true;

    // --- summary
    const fields = [
      ['id', 'Cluster ID'], ['name', 'Name'], ['state', 'State'], ['reason', 'State reason'],
      ['release', 'Release label'], ['applications', 'Applications'], ['clouds', 'Clouds'],
      ['loguri', 'Log URI'], ['autoterm', 'Auto-terminate'], ['protection', 'Termination protection'],
      ['hours', 'Normalized instance hours'], ['dns', 'Master public DNS'], ['created', 'Created'],
      ['ready', 'Ready'], ['ended', 'Ended'], ['elapsed', 'Elapsed'],
    ];
    const dd = {};
    const summary = h('dl', { id: 'cluster-summary', class: 'summary' });
    for (const [key, label] of fields) {
      dd[key] = h('dd', key === 'state' ? { id: 'cluster-state' } : { 'data-field': key });
      summary.append(h('dt', null, label), dd[key]);
    }
    setText(dd.id, cid);
    const webUis = h('ul', { id: 'web-uis' });
    let webUisKey = null;

    // --- charts
    const phaseSvg = svgEl('svg', { id: 'phase-timeline', class: 'plot', role: 'img', 'aria-label': 'Cluster phases' });
    const instSvg = svgEl('svg', { id: 'instances-plot', class: 'plot', role: 'img', 'aria-label': 'Running instances over time' });
    const stepsSvg = svgEl('svg', { id: 'steps-plot', class: 'plot', role: 'img', 'aria-label': 'Step durations' });
    svgMessage(phaseSvg, 'Loading…');
    svgMessage(instSvg, 'Loading…');
    svgMessage(stepsSvg, 'Loading…');

    // --- tables
    const mkTable = (id, cols) => {
      const tbody = h('tbody');
      const table = h('table', { id, class: 'grid' },
        h('thead', null, h('tr', null, cols.map((c) => h('th', null, c)))), tbody);
      return { table, tbody };
    };
    const groupsT = mkTable('groups-table',
      ['ID', 'Name', 'Role', 'Instance type', 'Requested', 'Running', 'State', 'Clouds', 'Resize']);
    const instT = mkTable('instances-table',
      ['ID', 'Group', 'Type', 'Cloud', 'Private IP', 'Public IP / DNS', 'State', 'Health']);
    const stepsT = mkTable('steps-table',
      ['Name / ID', 'State', 'Action on failure', 'Started', 'Ended', 'Duration', 'Details']);
    const bootT = mkTable('bootstrap-table', ['Name', 'Script path', 'Arguments']);
    const tagsT = mkTable('tags-table', ['Key', 'Value']);
    const configs = h('pre', { id: 'configurations' }, '');

    // --- add step form
    const stepName = h('input', { id: 'step-name', placeholder: 'My step', autocomplete: 'off' });
    const stepType = h('select', { id: 'step-type' },
      h('option', { value: 'custom-jar' }, 'Custom JAR'),
      h('option', { value: 'command-runner' }, 'Command (command-runner.jar)'));
    const stepJar = h('input', { id: 'step-jar', value: 'command-runner.jar', spellcheck: 'false' });
    const stepArgs = h('input', {
      id: 'step-args', class: 'wide', spellcheck: 'false', autocomplete: 'off',
      placeholder: 'spark-submit --class Main "s3://bucket/my app.jar" arg1',
    });
    const stepFailure = h('select', { id: 'step-failure' },
      ['CONTINUE', 'CANCEL_AND_WAIT', 'TERMINATE_CLUSTER'].map((v) => h('option', { value: v }, v)));
    const addStepBtn = h('button', { id: 'add-step-button', type: 'submit' }, 'Add step');
    const addStep = h('form', { id: 'add-step', class: 'inline-form' },
      h('label', null, 'Name', stepName),
      h('label', null, 'Type', stepType),
      h('label', null, 'JAR', stepJar),
      h('label', { class: 'grow' }, 'Arguments (space separated, "quoted" allowed)', stepArgs),
      h('label', null, 'On failure', stepFailure),
      addStepBtn);
    stepType.addEventListener('change', () => {
      if (stepType.value === 'command-runner') stepJar.value = 'command-runner.jar';
    });

    const section = h('section', { id: 'cluster-page', 'data-cluster-id': cid },
      h('div', { class: 'crumbs' }, h('a', { href: '#/clusters' }, 'Clusters'), ' / ', h('span', { class: 'mono' }, cid)),
      h('div', { class: 'page-head' }, h('h2', null, title),
        h('div', { class: 'actions' }, endedNote, protectionBtn, terminateBtn, cloneBtn)),
      message,
      cloneBox,
      h('div', { class: 'two-col wide-left' },
        card('Summary', summary),
        card('Web interfaces', webUis)),
      card('Phases', phaseSvg),
      card('Running instances', instSvg),
      card('Instance groups', h('div', { class: 'table-wrap' }, groupsT.table)),
      card('Instances', h('div', { class: 'table-wrap' }, instT.table)),
      card('Steps', h('div', { class: 'table-wrap' }, stepsT.table), stepsSvg, h('h4', null, 'Add a step'), addStep),
      h('div', { class: 'two-col' },
        card('Bootstrap actions', h('div', { class: 'table-wrap' }, bootT.table)),
        card('Tags', h('div', { class: 'table-wrap' }, tagsT.table))),
      card('Configurations', configs));
    $('content').replaceChildren(section);

    // The cluster does not exist or belongs to another account: nothing else to show or do.
    function showNotFound() {
      document.title = 'Cluster not found · Resilin console';
      section.replaceChildren(h('div', { id: 'cluster-not-found', class: 'card' },
        h('h3', null, 'Cluster not found'),
        h('p', null, 'No cluster ', h('span', { class: 'mono' }, cid),
          ' is visible to this account: it may not exist, or it may belong to another account.'),
        h('p', { class: 'not-found-back' }, h('a', { href: '#/clusters' }, '← Back to the clusters list'))));
    }

    // Whether DescribeCluster's error means there is no such cluster for this account, rather than a
    // passing failure: always so for 400 and 404, and for other client errors before any answer.
    function meansNotFound(e, first) {
      if (!e || e.sessionEnded || !e.status) return false;
      if (e.status === 400 || e.status === 404) return true;
      return first && e.status > 400 && e.status < 500 && ![401, 408, 429].includes(e.status);
    }

    function setDisabled(el, off) {
      const want = off || pending.has(el);
      if (el.disabled !== want) el.disabled = want;
    }

    // Once the cluster has ended, what would change it is disabled (cloning stays possible).
    function renderEnded() {
      endedNote.hidden = !ended;
      setDisabled(terminateBtn, ended);
      setDisabled(protectionBtn, ended || !data.cluster);
      for (const el of [stepName, stepType, stepJar, stepArgs, stepFailure, addStepBtn]) setDisabled(el, ended);
      for (const tr of groupsT.tbody.rows) for (const el of tr._resize || []) setDisabled(el, ended);
    }

    // Run a request with `el` disabled meanwhile.
    async function busy(el, fn) {
      pending.add(el);
      el.disabled = true;
      try {
        await fn();
      } finally {
        pending.delete(el);
        el.disabled = false;
        renderEnded();
      }
    }

    // --- renderers
    function renderSummary() {
      const c = data.cluster;
      if (!c) return;
      const st = c.Status || {};
      const tl = st.Timeline || {};
      setText(title, c.Name ? `${c.Name}` : cid);
      document.title = `${c.Name || cid} · Resilin console`;
      setText(dd.name, c.Name);
      setState(dd.state, st.State, '');
      setText(dd.reason, (st.StateChangeReason && st.StateChangeReason.Message) || '');
      setText(dd.release, c.ReleaseLabel || '');
      setText(dd.applications, fmtApps(c.Applications));
      setText(dd.clouds, ((data.details && data.details.Clouds) || []).join(', '));
      setText(dd.loguri, c.LogUri || '');
      setText(dd.autoterm, c.AutoTerminate ? 'yes' : 'no');
      setText(dd.protection, c.TerminationProtected ? 'enabled' : 'disabled');
      setText(dd.hours, c.NormalizedInstanceHours == null ? '' : c.NormalizedInstanceHours);
      setText(dd.dns, c.MasterPublicDnsName || '');
      setText(dd.created, fmtTime(tl.CreationDateTime));
      setText(dd.ready, fmtTime(tl.ReadyDateTime));
      setText(dd.ended, fmtTime(tl.EndDateTime));
      setText(dd.elapsed, span(tl.CreationDateTime, tl.EndDateTime));
      ended = FINAL_CLUSTER.has(st.State);
      renderEnded();
      setText(protectionBtn, c.TerminationProtected ? 'Disable termination protection' : 'Enable termination protection');
      setText(configs, JSON.stringify(c.Configurations || [], null, 2));
      const tags = (c.Tags || []).slice().sort((a, b) => String(a.Key).localeCompare(String(b.Key)));
      syncRows(tagsT.tbody, tags, (t) => t.Key, 'data-tag',
        () => h('tr', null, h('td', { class: 'mono' }), h('td')),
        (tr, t) => {
          setText(tr.cells[0], t.Key);
          setText(tr.cells[1], t.Value);
        });
    }

    function renderWebUis() {
      const det = data.details;
      if (!det) return;
      const uis = det.WebUis || [];
      const key = JSON.stringify([uis, det.WebUisReason]);
      if (key === webUisKey) return;
      webUisKey = key;
      if (uis.length) {
        webUis.replaceChildren(...uis.map((u) => h('li', null,
          /^(https?:\/\/|\/)/i.test(String(u.Url || ''))
            ? h('a', { href: u.Url, target: '_blank', rel: 'noopener' }, u.Name || u.Url)
            : `${u.Name || ''} ${u.Url || ''}`.trim())));
      } else {
        webUis.replaceChildren(h('li', { class: 'muted' }, det.WebUisReason || 'No web interface available.'));
      }
    }

    function groupClouds(gid) {
      const gc = (data.details && data.details.GroupClouds) || {};
      return (gc[gid] || []).join(', ');
    }

    function createGroupRow(g) {
      const cells = Array.from({ length: 8 }, () => h('td'));
      cells[0].className = 'mono';
      cells[4].className = 'num';
      cells[5].className = 'num';
      const resizeTd = h('td', { class: 'resize' });
      if (g.InstanceGroupType !== 'MASTER') {
        const input = h('input', {
          class: 'resize-count', type: 'number', min: '0', step: '1',
          value: String(g.RequestedInstanceCount ?? ''), 'aria-label': `New instance count for ${g.Id}`,
        });
        const btn = h('button', { class: 'resize-button', type: 'button' }, 'Resize');
        btn.addEventListener('click', async () => {
          const raw = input.value.trim();
          const n = Number(raw);
          if (raw === '' || !Number.isFinite(n)) {
            showAction('Enter the new number of instances.', true);
            return;
          }
          await busy(btn, async () => {
            try {
              await api('ModifyInstanceGroups', {
                ClusterId: cid, InstanceGroups: [{ InstanceGroupId: g.Id, InstanceCount: n }],
              });
              showAction(`Resize of ${g.Id} to ${n} instance(s) requested.`, false);
              poller.now();
            } catch (e) {
              if (!e.sessionEnded) showAction(errText(e), true);
            }
          });
        });
        input.disabled = ended;
        btn.disabled = ended;
        resizeTd.append(input, btn);
        resizeTd._controls = [input, btn];
      } else {
        resizeTd.append(h('span', { class: 'muted' }, '—'));
      }
      const tr = h('tr', null, ...cells, resizeTd);
      tr._cells = cells;
      tr._resize = resizeTd._controls || [];
      return tr;
    }

    function updateGroupRow(tr, g) {
      const c = tr._cells;
      setText(c[0], g.Id);
      setText(c[1], g.Name);
      setText(c[2], g.InstanceGroupType);
      setText(c[3], g.InstanceType + (g.Market === 'SPOT' ? ' (spot)' : ''));
      setText(c[4], g.RequestedInstanceCount);
      setText(c[5], g.RunningInstanceCount);
      setState(c[6], g.Status && g.Status.State, 'group-state');
      setText(c[7], groupClouds(g.Id));
    }

    function createInstanceRow() {
      const cells = Array.from({ length: 8 }, () => h('td'));
      const id = h('div', { class: 'mono' });
      const ec2 = h('div', { class: 'sub mono' });
      cells[0].append(id, ec2);
      const gid = h('div', { class: 'mono' });
      const gname = h('div', { class: 'sub' });
      cells[1].append(gid, gname);
      cells[4].className = 'mono';
      cells[5].className = 'mono';
      cells[7].className = 'instance-health';
      const tr = h('tr', null, ...cells);
      tr._cells = { cells, id, ec2, gid, gname };
      return tr;
    }

    function updateInstanceRow(tr, inst) {
      const { cells, id, ec2, gid, gname } = tr._cells;
      const ic = (data.details && data.details.InstanceClouds) || {};
      const group = data.groups.find((g) => g.Id === inst.InstanceGroupId);
      setText(id, inst.Id);
      setText(ec2, inst.Ec2InstanceId && inst.Ec2InstanceId !== inst.Id ? inst.Ec2InstanceId : '');
      setText(gid, inst.InstanceGroupId || inst.InstanceFleetId || '');
      setText(gname, group ? `${group.Name || ''} (${group.InstanceGroupType})` : '');
      setText(cells[2], inst.InstanceType || '');
      setText(cells[3], ic[inst.Id] || '');
      setText(cells[4], inst.PrivateIpAddress || '');
      const pub = [inst.PublicIpAddress, inst.PublicDnsName].filter(Boolean);
      setText(cells[5], [...new Set(pub)].join(' / '));
      setState(cells[6], inst.Status && inst.Status.State, 'instance-state');
      const r = (inst.Status && inst.Status.StateChangeReason) || {};
      setText(cells[7], r.Message || '');
    }

    function createStepRow(s) {
      const link = h('a', { class: 'step-link', href: `#/cluster/${enc(cid)}/step/${enc(s.Id)}` });
      const sid = h('div', { class: 'sub mono' });
      const cells = {
        link,
        sid,
        name: h('td', { class: 'step-name' }, link, sid),
        state: h('td', { class: 'step-state' }),
        failure: h('td', { class: 'step-failure' }),
        started: h('td', { class: 'nowrap' }),
        ended: h('td', { class: 'nowrap' }),
        duration: h('td', { class: 'nowrap' }),
        details: h('td', { class: 'step-details' }),
      };
      const tr = h('tr', null, cells.name, cells.state, cells.failure, cells.started, cells.ended,
        cells.duration, cells.details);
      tr._cells = cells;
      return tr;
    }

    function updateStepRow(tr, s) {
      const c = tr._cells;
      const st = s.Status || {};
      const tl = st.Timeline || {};
      setText(c.link, s.Name || s.Id);
      setText(c.sid, s.Id);
      setState(c.state, st.State, 'step-state');
      setText(c.failure, s.ActionOnFailure || '');
      setText(c.started, fmtTime(tl.StartDateTime));
      setText(c.ended, fmtTime(tl.EndDateTime));
      setText(c.duration, span(tl.StartDateTime, tl.EndDateTime));
      const fd = st.FailureDetails || {};
      const r = st.StateChangeReason || {};
      setText(c.details, [fd.Reason, fd.Message, r.Message].filter(Boolean).join(' — '));
    }

    function renderBootstraps() {
      if (!data.bootstraps) return;
      syncRows(bootT.tbody, data.bootstraps, (b) => `${b.Name}|${b.ScriptPath}`, 'data-bootstrap',
        () => h('tr', null, h('td'), h('td', { class: 'mono' }), h('td', { class: 'mono' })),
        (tr, b) => {
          setText(tr.cells[0], b.Name);
          setText(tr.cells[1], b.ScriptPath);
          setText(tr.cells[2], (b.Args || []).map(shellQuote).join(' '));
        });
    }

    function renderAll() {
      renderSummary();
      renderWebUis();
      if (data.details) drawPhases(phaseSvg, data.details.StateHistory);
      if (data.cluster) drawInstances(instSvg, data.instances, data.cluster);
      syncRows(groupsT.tbody, data.groups, (g) => g.Id, 'data-group-id', createGroupRow, updateGroupRow);
      syncRows(instT.tbody, data.instances, (i) => i.Id, 'data-instance-id', createInstanceRow, updateInstanceRow);
      syncRows(stepsT.tbody, data.steps, (s) => s.Id, 'data-step-id', createStepRow, updateStepRow);
      drawSteps(stepsSvg, data.steps);
      renderBootstraps();
    }

    poller = poll('cluster', async (alive) => {
      const q = { ClusterId: cid };
      const res = await Promise.allSettled([
        api('DescribeCluster', q),
        request('GET', '/details/' + enc(cid)),
        apiAll('ListInstanceGroups', q, 'InstanceGroups'),
        apiAll('ListInstances', q, 'Instances'),
        apiAll('ListSteps', q, 'Steps'),
        data.bootstraps ? Promise.resolve(data.bootstraps) : apiAll('ListBootstrapActions', q, 'BootstrapActions'),
      ]);
      if (!alive()) return;
      if (res[0].status === 'rejected' && meansNotFound(res[0].reason, !data.cluster)) {
        showNotFound();
        res[0].reason.stopPolling = true; // its message stays in the banner
        throw res[0].reason;
      }
      const errors = [];
      const val = (i) => {
        if (res[i].status === 'fulfilled') return res[i].value;
        errors.push(res[i].reason);
        return undefined;
      };
      const dc = val(0);
      const det = val(1);
      const groups = val(2);
      const insts = val(3);
      const steps = val(4);
      const boots = val(5);
      if (dc && dc.Cluster) data.cluster = dc.Cluster;
      if (det) data.details = det;
      if (groups) data.groups = groups;
      if (insts) data.instances = insts;
      if (steps) data.steps = steps;
      if (boots) data.bootstraps = boots;
      renderAll();
      if (errors.length) throw errors.find((e) => e.sessionEnded) || errors[0];
    });

    // --- actions
    terminateBtn.addEventListener('click', async () => {
      if (!window.confirm(`Terminate cluster ${cid}? This cannot be undone.`)) return;
      await busy(terminateBtn, async () => {
        try {
          await api('TerminateJobFlows', { JobFlowIds: [cid] });
          showAction(`Termination of ${cid} requested.`, false);
          poller.now();
        } catch (e) {
          if (!e.sessionEnded) showAction(errText(e), true);
        }
      });
    });

    protectionBtn.addEventListener('click', async () => {
      if (!data.cluster) return;
      const want = !data.cluster.TerminationProtected;
      await busy(protectionBtn, async () => {
        try {
          await api('SetTerminationProtection', { JobFlowIds: [cid], TerminationProtected: want });
          data.cluster.TerminationProtected = want;
          showAction(`Termination protection ${want ? 'enabled' : 'disabled'}.`, false);
          renderSummary();
          poller.now();
        } catch (e) {
          if (!e.sessionEnded) showAction(errText(e), true);
        }
      });
    });

    addStep.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (ended) return;
      let args;
      try {
        args = splitArgs(stepArgs.value);
      } catch (e) {
        showAction(errText(e), true);
        return;
      }
      const commandRunner = stepType.value === 'command-runner';
      const jar = commandRunner ? 'command-runner.jar' : stepJar.value.trim();
      const name = stepName.value.trim() || (commandRunner ? 'Command' : 'Custom JAR');
      await busy(addStepBtn, async () => {
        try {
          const r = await api('AddJobFlowSteps', {
            JobFlowId: cid,
            Steps: [{ Name: name, ActionOnFailure: stepFailure.value, HadoopJarStep: { Jar: jar, Args: args } }],
          });
          showAction(`Added step ${(r.StepIds || []).join(', ')}.`, false);
          poller.now();
        } catch (e) {
          if (!e.sessionEnded) showAction(errText(e), true);
        }
      });
    });

    cloneBtn.addEventListener('click', async () => {
      cloneBtn.disabled = true;
      try {
        const q = { ClusterId: cid };
        const [dc, groups, boots, steps] = await Promise.all([
          api('DescribeCluster', q),
          apiAll('ListInstanceGroups', q, 'InstanceGroups'),
          apiAll('ListBootstrapActions', q, 'BootstrapActions'),
          apiAll('ListSteps', q, 'Steps'),
        ]);
        const ordered = steps.slice().reverse().sort((a, b) =>
          (toEpoch(a.Status && a.Status.Timeline && a.Status.Timeline.CreationDateTime) || 0) -
          (toEpoch(b.Status && b.Status.Timeline && b.Status.Timeline.CreationDateTime) || 0));
        setText(cloneCmd, buildCloneCommand(dc.Cluster, groups, boots, ordered));
        cloneCmd.hidden = false;
        cloneBox.hidden = false;
      } catch (e) {
        if (!e.sessionEnded) showAction(errText(e), true);
      } finally {
        cloneBtn.disabled = false;
      }
    });

    copyBtn.addEventListener('click', () => {
      try {
        if (navigator.clipboard) {
          navigator.clipboard.writeText(cloneCmd.textContent).then(
            () => setText(copyBtn, 'Copied'),
            () => {});
        }
      } catch (e) {
        // Clipboard unavailable: ignore.
      }
    });
  }

  // ---------------------------------------------------------------- step page

  function renderStep(cid, sid) {
    document.title = `${sid} · Resilin console`;
    let stepState = null;
    const title = h('span', null, sid);
    const stateSpan = h('span', { id: 'step-state' });
    const fields = [
      ['id', 'Step ID'], ['name', 'Name'], ['state', 'State'], ['failure', 'Action on failure'],
      ['jar', 'JAR'], ['main', 'Main class'], ['args', 'Arguments'], ['created', 'Created'],
      ['started', 'Started'], ['ended', 'Ended'], ['duration', 'Duration'], ['details', 'Details'],
    ];
    const dd = {};
    const dt = {};
    const summary = h('dl', { id: 'step-summary', class: 'summary' });
    for (const [key, label] of fields) {
      dd[key] = h('dd', { 'data-field': key });
      dt[key] = h('dt', null, label);
      summary.append(dt[key], dd[key]);
    }
    // Rows shown only when they have something to say.
    const optional = (key, text) => {
      setText(dd[key], text);
      const hide = !text;
      if (dd[key].hidden !== hide) {
        dd[key].hidden = hide;
        dt[key].hidden = hide;
      }
    };
    dd.main.hidden = dt.main.hidden = true;
    dd.details.hidden = dt.details.hidden = true;
    dd.state.append(stateSpan);
    dd.args.className = 'mono';
    dd.jar.className = 'mono';
    setText(dd.id, sid);

    const appsList = h('ul', { id: 'step-applications', class: 'mono' });
    const appsNone = h('p', { class: 'muted' }, 'No YARN application reported yet.');
    const apps = new Set();
    // Each application links to its page in the ResourceManager's UI, while the cluster runs.
    let rmBase = null;
    const renderApps = () => {
      const sorted = [...apps].sort();
      if (appsList.children.length !== sorted.length) {
        appsList.replaceChildren(...sorted.map((a) => h('li', null, rmBase
          ? h('a', { href: rmBase + 'cluster/app/' + a, target: '_blank', rel: 'noopener' }, a)
          : a)));
      }
      appsNone.hidden = sorted.length > 0;
    };
    request('GET', `/details/${enc(cid)}`).then((d) => {
      const rm = ((d && d.WebUis) || []).find((u) => /\/resourcemanager\/$/.test(u.Url));
      if (rm) {
        rmBase = rm.Url;
        appsList.replaceChildren();
        renderApps();
      }
    }).catch(() => {});

    const panes = LOG_NAMES.map((name) => {
      const pre = h('pre', { id: 'log-' + name, class: 'log' });
      const status = h('span', { class: 'log-status muted', id: `log-${name}-status` }, 'waiting…');
      const box = h('div', { class: 'card log-pane' }, h('div', { class: 'row' }, h('h3', null, name), status), pre);
      return { name, pre, status, box };
    });

    const section = h('section', { id: 'step-page', 'data-cluster-id': cid, 'data-step-id': sid },
      h('div', { class: 'crumbs' },
        h('a', { href: '#/clusters' }, 'Clusters'), ' / ',
        h('a', { href: '#/cluster/' + enc(cid), class: 'mono cluster-crumb' }, cid), ' / ',
        h('span', { class: 'mono' }, sid)),
      h('div', { class: 'page-head' }, h('h2', null, title)),
      h('div', { class: 'two-col wide-left' },
        card('Step', summary),
        card('YARN applications', appsList, appsNone)),
      panes.map((p) => p.box));
    $('content').replaceChildren(section);

    poll('step', async (alive) => {
      const r = await api('DescribeStep', { ClusterId: cid, StepId: sid });
      if (!alive()) return undefined;
      const s = r.Step || {};
      const st = s.Status || {};
      const tl = st.Timeline || {};
      const cfg = s.Config || {};
      stepState = st.State || null;
      setText(title, s.Name || sid);
      document.title = `${s.Name || sid} · Resilin console`;
      setText(dd.name, s.Name);
      setState(stateSpan, st.State, '');
      setText(dd.failure, s.ActionOnFailure || '');
      setText(dd.jar, cfg.Jar || '');
      optional('main', cfg.MainClass || '');
      setText(dd.args, (cfg.Args || []).map(shellQuote).join(' '));
      setText(dd.created, fmtTime(tl.CreationDateTime));
      setText(dd.started, fmtTime(tl.StartDateTime));
      setText(dd.ended, fmtTime(tl.EndDateTime));
      setText(dd.duration, span(tl.StartDateTime, tl.EndDateTime));
      const fd = st.FailureDetails || {};
      const reason = st.StateChangeReason || {};
      optional('details', [fd.Reason, fd.Message, fd.LogFile, reason.Message].filter(Boolean).join(' — '));
      return FINAL_STEP.has(stepState) ? 'stop' : undefined;
    });

    for (const p of panes) {
      let offset = 0;
      let missesAfterEnd = 0;
      poll('log-' + p.name, async (alive) => {
        let r;
        try {
          r = await request('GET', `/logs/${enc(cid)}/${enc(sid)}/${p.name}?offset=${offset}`);
        } catch (e) {
          if (!alive()) return undefined;
          if (e.status === 404) {
            setText(p.status, errText(e));
            if (stepState && FINAL_STEP.has(stepState) && ++missesAfterEnd > 3) return 'stop';
            return undefined;
          }
          if (!e.sessionEnded) setText(p.status, 'Error: ' + errText(e));
          throw e;
        }
        if (!alive()) return undefined;
        if (r.Data) {
          const pre = p.pre;
          const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
          pre.append(document.createTextNode(r.Data));
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        }
        if (typeof r.Offset === 'number') offset = r.Offset;
        for (const a of r.Applications || []) apps.add(a);
        renderApps();
        setText(p.status, `source: ${r.Source || 'unknown'} · ${r.Complete ? 'complete' : 'live'}`);
        return r.Complete ? 'stop' : undefined;
      });
    }
  }

  // ---------------------------------------------------------------- clouds page

  function gauge(used, quota) {
    const u = Number(used) || 0;
    if (quota == null) {
      return h('div', { class: 'gauge-cell' }, h('span', { class: 'gauge-text' }, `${u} / no quota`));
    }
    const q = Number(quota);
    const pct = q > 0 ? Math.min(100, (u / q) * 100) : (u > 0 ? 100 : 0);
    const fill = h('div', { class: 'gauge-fill' + (pct >= 90 ? ' high' : pct >= 70 ? ' mid' : '') });
    fill.style.width = pct.toFixed(1) + '%';
    return h('div', { class: 'gauge-cell' },
      h('span', { class: 'gauge-text' }, `${u} / ${q}`),
      h('div', { class: 'gauge', title: `${pct.toFixed(0)}% used` }, fill));
  }

  function renderClouds() {
    document.title = 'Clouds · Resilin console';
    const refreshBtn = h('button', { id: 'clouds-refresh', type: 'button' }, 'Refresh');
    const status = h('span', { class: 'updated muted' }, 'Loading…');
    const tbody = h('tbody');
    const cols = ['Cloud', 'Kind', 'Region', 'Instances (in use / quota)', 'vCPUs (in use / quota)',
      'Health', 'Checks', 'Groups'];
    const table = h('table', { id: 'clouds-table', class: 'grid' },
      h('thead', null, h('tr', null, cols.map((c) => h('th', null, c)))), tbody);
    const section = h('section', { id: 'clouds-page' },
      h('div', { class: 'page-head' }, h('h2', null, 'Clouds'), h('div', { class: 'actions' }, status, refreshBtn)),
      h('div', { class: 'card table-wrap' }, table));
    $('content').replaceChildren(section);
    const token = S.token;
    let loading = false;

    const rowFor = (c) => {
      const checks = h('ul', { class: 'checks' }, (c.Checks || []).map((k) => {
        const cls = k.Status === 'ok' ? 'check-ok' : k.Status === 'FAIL' ? 'check-fail' : 'check-na';
        return h('li', null, h('span', { class: 'check-status ' + cls }, k.Status), ' ', k.Text);
      }));
      const groups = (c.Groups || []).length
        ? h('ul', { class: 'cloud-groups' }, c.Groups.map((g) => h('li', null,
          h('a', { class: 'cluster-link', href: '#/cluster/' + enc(g.ClusterId) }, g.ClusterName || g.ClusterId),
          ' ', h('span', { class: 'mono sub-inline' }, g.ClusterId),
          ' · ', g.GroupName || '', ' ', h('span', { class: 'mono sub-inline' }, g.GroupId),
          ' × ', String(g.InstanceCount))))
        : h('span', { class: 'muted' }, 'none');
      const inUse = c.InUse || {};
      const quota = c.Quota || {};
      return h('tr', { 'data-cloud': c.Name },
        h('td', { class: 'cloud-name' }, h('strong', null, c.Name), c.Default ? ' (default)' : ''),
        h('td', { class: 'kind' }, c.Kind || ''),
        h('td', { class: 'region' }, c.Region || ''),
        h('td', { class: 'instances' }, gauge(inUse.Instances, quota.Instances)),
        h('td', { class: 'vcpus' }, gauge(inUse.VCpus, quota.VCpus)),
        h('td', { class: 'health ' + (c.Healthy ? 'healthy' : 'unhealthy') }, c.Healthy ? 'healthy' : 'unhealthy'),
        h('td', { class: 'checks-cell' }, checks),
        h('td', { class: 'groups' }, groups));
    };

    async function load() {
      if (loading || token !== S.token) return;
      loading = true;
      refreshBtn.disabled = true;
      setText(status, 'Loading…');
      try {
        const r = await request('GET', '/clouds');
        if (token !== S.token) return;
        tbody.replaceChildren(...(r.Clouds || []).map(rowFor));
        setText(status, 'Updated ' + fmtTime(nowSec()).slice(11));
        clearError('clouds');
      } catch (e) {
        if (token !== S.token || e.sessionEnded) return;
        setText(status, '');
        setError('clouds', e);
      } finally {
        loading = false;
        refreshBtn.disabled = false;
      }
    }
    refreshBtn.addEventListener('click', load);
    load();
  }

  // ---------------------------------------------------------------- start

  async function start() {
    $('signin').addEventListener('submit', onSignIn);
    $('signout').addEventListener('click', onSignOut);
    window.onhashchange = route;
    try {
      const s = await request('GET', '/session');
      setSession(s);
    } catch (e) {
      showSignIn();
      if (e.status !== 401) setError('session', e);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
