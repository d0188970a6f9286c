/* donations widget: renders GET /api/v1/appeal into each [data-donations-appeal] (shadow DOM);
 * any failure leaves the page untouched. Usage: templates/demo_article.html. */
(() => {
  'use strict';
  const w = window, d = document;
  if (w.donations || !Element.prototype.attachShadow || !w.fetch || !w.URL || !w.Promise) return;

  const KEY = 'donations:state', OPT = 'donations:optout', SUP = 'donations:supporter';
  const DAY = 864e5, KEEP = 30 * DAY, KEEP_DISMISSED = 365 * DAY, TIMEOUT = 2500;
  const SLUG = /^[a-z0-9][a-z0-9-]{0,99}$/, SERIF = 'Georgia,"Times New Roman",serif';
  const script = d.currentScript || d.querySelector('script[src*="widget.js"]');
  const api = ((script && script.getAttribute('data-donations-api')) ||
    (script && script.src ? new URL(script.src, location.href).origin : location.origin)).replace(/\/+$/, '');
  const all = (root, sel) => [...root.querySelectorAll(sel)];
  const mounted = [], queue = [];
  let timer = 0, seq = 0, io = null;

  const get = (k) => { try { return localStorage.getItem(k); } catch (e) { return null; } };
  const put = (k, v) => {
    try { v === null ? localStorage.removeItem(k) : localStorage.setItem(k, v); } catch (e) { /* private mode */ }
  };
  const off = () => get(OPT) === '1';
  const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});

  const randomId = () => [...crypto.getRandomValues(new Uint8Array(16))].map((x) => (x + 256).toString(16).slice(1)).join('');

  /* {rid, reads: {day: [article]}, imps: {campaign: [ms]}, dis: {campaign: ms}}, pruned */
  const loadState = () => {
    let s;
    try { s = obj(JSON.parse(get(KEY))); } catch (e) { s = {}; }
    const t = Date.now(), reads = obj(s.reads), imps = obj(s.imps), dis = obj(s.dis);
    const out = { reads: {}, imps: {}, dis: {} };
    out.rid = /^[\w-]{1,64}$/.test(s.rid || '') ? s.rid : randomId();
    Object.keys(reads).forEach((day) => {
      if (t - Date.parse(day + 'T00:00:00Z') < KEEP && Array.isArray(reads[day])) out.reads[day] = reads[day].slice(-200);
    });
    Object.keys(imps).forEach((c) => {
      const l = Array.isArray(imps[c]) ? imps[c].filter((x) => t - x < KEEP) : [];
      if (SLUG.test(c) && l.length) out.imps[c] = l.slice(-100);
    });
    Object.keys(dis).forEach((c) => { if (SLUG.test(c) && t - dis[c] < KEEP_DISMISSED) out.dis[c] = +dis[c]; });
    return out;
  };
  const save = (s) => { if (!off()) put(KEY, JSON.stringify(s)); };

  /* text/plain: no CORS preflight */
  const flush = () => {
    clearTimeout(timer);
    timer = 0;
    while (queue.length && !off()) {
      const body = JSON.stringify({ events: queue.splice(0, 50) }), url = api + '/api/v1/events';
      let sent = false;
      try { sent = navigator.sendBeacon(url, new Blob([body], { type: 'text/plain' })); } catch (e) { /* below */ }
      if (!sent) {
        try {
          fetch(url, { method: 'POST', body, keepalive: true, credentials: 'omit',
            headers: { 'Content-Type': 'text/plain' } }).catch(() => {});
        } catch (e) { /* lost */ }
      }
    }
    queue.length = 0;
  };
  const track = (type, a, soon) => {
    if (off() || a._pv) return;
    const { impression, campaign, variant, placement, article } = a;
    queue.push({ type, impression, campaign, variant, placement, article });
    if (soon) flush(); else if (!timer) timer = setTimeout(flush, 1000);
  };
  w.addEventListener('pagehide', flush);
  d.addEventListener('visibilitychange', () => { if (d.visibilityState === 'hidden') flush(); });

  const esc = (v) => String(v == null ? '' : v).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
  const money = (minor, currency, lang) => {
    try {
      const exp = new Intl.NumberFormat(lang, { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
      const v = minor / 10 ** exp;
      return new Intl.NumberFormat(lang, { style: 'currency', currency, minimumFractionDigits: v % 1 ? exp : 0 }).format(v);
    } catch (e) { return minor / 100 + ' ' + currency; }
  };
  const PER = { monthly: ' a month', annual: ' a year' };
  const CSS = `:host{all:initial;display:block}*{box-sizing:border-box}
.w{--a:var(--donations-accent,#b3121d);--k:#121212;font:16px/1.5 system-ui,sans-serif;color:var(--k)}
.p{position:relative;background:#f7f4ec;border-top:4px solid var(--a)}
.ep{margin:2rem 0;padding:1.25rem 1.5rem 1.5rem}
h2{margin:0 2rem .6rem 0;font:700 1.5rem/1.2 ${SERIF}}
.b{font:1.0625rem/1.6 ${SERIF};color:#333}.b p{margin:0 0 .8rem}.b a{color:var(--a)}
.r{margin:0 0 .5rem;font-size:.8125rem;font-weight:700;letter-spacing:.06em;text-transform:uppercase;color:var(--a)}
.t{margin:1rem 0}.bar{height:8px;border-radius:4px;background:#e3ddd0;overflow:hidden}
.bar i{display:block;height:100%;background:var(--a)}
.tl{display:flex;justify-content:space-between;margin-top:.35rem;font-size:.875rem;color:#555}.tl b{color:var(--k)}
.am{display:flex;flex-wrap:wrap;gap:.5rem;margin:1rem 0}
button{font:inherit;color:inherit;cursor:pointer}
.am button{padding:.5rem .9rem;border:1.5px solid var(--k);border-radius:99px;background:#fff;font-weight:600}
.am button[aria-pressed=true]{background:var(--k);color:#fff}
.cta{display:inline-block;padding:.7rem 1.3rem;border-radius:99px;background:var(--a);color:#fff;font-weight:700;text-decoration:none}
.cta:hover{filter:brightness(1.15)}.cta:after{content:" \\2192"}
.x{position:absolute;top:.5rem;right:.5rem;width:2.25rem;height:2.25rem;border:0;border-radius:50%;background:none;font-size:1.5rem;line-height:1;color:#555}
.x:hover{background:#0001}:focus-visible{outline:3px solid #f2b705;outline-offset:2px}.dl:focus{outline:0}
.pm{margin:.75rem 0 0;font-size:.8125rem;color:#666}
.bn{position:fixed;left:0;right:0;bottom:0;z-index:2147483000;padding:.9rem 3.25rem .9rem 1.25rem;box-shadow:0 -6px 24px #0003}
.in{max-width:70rem;margin:0 auto;display:flex;align-items:center;justify-content:space-between;gap:1rem;flex-wrap:wrap}
.in p{margin:0;font:700 1.125rem/1.3 ${SERIF}}.bn .x{top:50%;margin-top:-1.125rem}
.ov{position:fixed;inset:0;z-index:2147483600;display:flex;align-items:center;justify-content:center;padding:1rem;background:#121212b8}
.dl{max-width:34rem;max-height:calc(100vh - 2rem);overflow:auto;padding:1.75rem;box-shadow:0 20px 60px #0006;border-radius:4px}
@media (max-width:40rem){.ep{padding:1rem}h2{font-size:1.3rem}.in p{font-size:1rem}}`;

  const ticker = (t, lang) => {
    if (!t || !(t.goal > 0)) return '';
    const raised = Math.max(0, t.raised || 0), r = money(raised, t.currency, lang), g = money(t.goal, t.currency, lang);
    return `<div class="t"><div class="bar" role="progressbar" aria-label="Appeal progress" aria-valuemin="0"
 aria-valuemax="${t.goal}" aria-valuenow="${Math.min(raised, t.goal)}" aria-valuetext="${esc(r)} raised of our ${esc(g)} goal">
<i data-w="${Math.min(100, Math.round(raised / t.goal * 100))}"></i></div>
<div class="tl" aria-hidden="true"><span>${raised ? `<b>${esc(r)}</b> raised` : 'Be among the first to give'}</span><span>Goal ${esc(g)}</span></div></div>`;
  };

  /* The shadow root's stylesheet carries the nonce of the page's <script nonce> tag, so a page
     whose CSP allows no inline styles (style-src 'nonce-…') still lets it apply. */
  const nonce = (script && script.nonce) || '';
  const styles = (root) => {
    const el = d.createElement('style');
    if (nonce) el.nonce = nonce;
    el.textContent = CSS;
    root.prepend(el);
  };

  const render = (el, a) => {
    let cta;
    try { cta = new URL(a.cta.url, location.href); } catch (e) { return false; }
    if (!/^https?:$/.test(cta.protocol)) return false;
    const root = el.shadowRoot || el.attachShadow({ mode: 'open' });
    const { lang, placement: kind } = a, id = 'donations-h' + ++seq, am = a.amounts || {};
    const freq = am.default_frequency, presets = (am.presets || {})[freq] || [], chosen = +cta.searchParams.get('amount');
    const close = a.dismissible ? '<button type="button" class="x" aria-label="Close">&times;</button>' : '';
    const link = `<a class="cta" href="${esc(cta.href)}">${esc(a.cta.label)}</a>`;
    const label = 'role="complementary" aria-label="Support our journalism"';
    let html;
    if (kind === 'banner') {
      html = `<div class="p bn" ${label}><div class="in"><p>${esc(a.heading)}</p>${link}</div>${close}</div>`;
    } else {
      const inner = (a.articles_read >= 3 ? `<p class="r">You\u2019ve read ${+a.articles_read} articles in the last 30 days</p>` : '') +
        `<h2 id="${id}">${esc(a.heading)}</h2><div class="b">${a.body_html || ''}</div>${ticker(a.ticker, lang)}` +
        (presets.length ? '<div class="am" role="group" aria-label="Amount">' + presets.map((v) =>
          `<button type="button" data-amount="${+v}" aria-pressed="${v === chosen}">${esc(money(v, am.currency, lang) + (PER[freq] || ''))}</button>`
        ).join('') + '</div>' : '') +
        `${link}<p class="pm">Secure payment by card.${freq === 'one_off' ? '' : ' Cancel at any time.'}</p>${close}`;
      html = kind === 'gate'
        ? `<div class="ov"><div class="p dl" role="dialog" aria-modal="true" aria-labelledby="${id}" tabindex="-1">${inner}</div></div>`
        : `<div class="p ep" ${label}>${inner}</div>`;
    }
    root.innerHTML = `<div class="w" lang="${esc(lang)}">${html}</div>`;
    styles(root);
    all(root, 'i[data-w]').forEach((i) => { i.style.width = i.getAttribute('data-w') + '%'; });
    const box = root.querySelector('.p'), ctaEl = root.querySelector('.cta');
    all(root, '.am button').forEach((b) => b.addEventListener('click', () => {
      all(root, '.am button').forEach((o) => o.setAttribute('aria-pressed', String(o === b)));
      cta.searchParams.set('amount', b.getAttribute('data-amount'));
      ctaEl.href = cta.href;
    }));
    ctaEl.addEventListener('click', () => track('click', a, true));
    /* preview (admin editor): links inert; no state, events, focus trap or dismissal */
    if (a._pv) {
      root.querySelector('.w').addEventListener('click', (e) => e.preventDefault());
      return true;
    }
    const m = { el, a, undo: () => { root.innerHTML = ''; } };
    mounted.push(m);
    const x = root.querySelector('.x');
    if (x) x.addEventListener('click', () => dismiss(m));
    if (kind === 'gate') trap(m, root, box);
    track('impression', a);
    box._a = a;
    if (io) io.observe(box); else track('view', a);
    return true;
  };

  const unmount = (m) => {
    const i = mounted.indexOf(m);
    if (i >= 0) mounted.splice(i, 1);
    m.undo();
  };
  const dismiss = (m) => {
    const s = loadState();
    s.dis[m.a.campaign] = Date.now();
    save(s);
    track('dismiss', m.a, true);
    mounted.filter((o) => o.a.campaign === m.a.campaign).forEach(unmount);
  };

  /* The gate: a modal dialog that traps focus and gives it back */
  const trap = (m, root, dlg) => {
    const before = d.activeElement, de = d.documentElement, overflow = de.style.overflow;
    const key = (e) => {
      if (e.key === 'Escape' && m.a.dismissible) { e.preventDefault(); return dismiss(m); }
      if (e.key !== 'Tab') return;
      const l = all(dlg, 'a[href],button'), cur = root.activeElement, i = l.indexOf(cur);
      e.preventDefault();
      if (!l.length) return dlg.focus();
      const next = e.shiftKey ? (i <= 0 ? l.length - 1 : i - 1) : (i + 1) % l.length;
      l[next].focus();
    };
    const back = (e) => { if (e.target !== m.el) dlg.focus(); };
    d.addEventListener('keydown', key, true);
    d.addEventListener('focusin', back, true);
    de.style.overflow = 'hidden';
    const undo = m.undo;
    m.undo = () => {
      d.removeEventListener('keydown', key, true);
      d.removeEventListener('focusin', back, true);
      de.style.overflow = overflow;
      undo();
      try { if (before && before.focus) before.focus(); } catch (e) { /* gone */ }
    };
    dlg.focus();
  };

  const articleOf = (el) => (el.getAttribute('data-article') || location.pathname || '/').slice(0, 200);

  const place = (el, s) => {
    if (el._donations) return Promise.resolve();
    el._donations = 1;
    const article = articleOf(el), attr = (n) => el.getAttribute('data-' + n);
    let lang = (attr('lang') || d.documentElement.lang || 'en').toLowerCase();
    if (!/^[a-z]{2,3}(-[a-z0-9]{2,8})?$/.test(lang)) lang = 'en';
    const dis = Object.keys(s.dis), last = Math.max(0, ...dis.map((c) => s.dis[c]));
    const q = {
      article, placement: attr('placement') || 'epic', section: attr('section'),
      tags: String(attr('tags') || '').split(',').map((x) => x.trim()).filter(Boolean).join(','),
      lang, views: s.views, rid: s.rid, dismissed: dis.slice(-100).join(','),
      last_dismissed: last ? new Date(last).toISOString().replace(/\.\d+Z$/, 'Z') : '',
      seen: Object.keys(s.imps).map((c) => c + ':' + s.imps[c].length).join(','),
      supporter: get(SUP),
    };
    const qs = Object.keys(q).filter((k) => q[k] != null && q[k] !== '')
      .map((k) => k + '=' + encodeURIComponent(q[k])).join('&');
    const ctl = w.AbortController ? new AbortController() : null;
    const t = setTimeout(() => ctl && ctl.abort(), TIMEOUT);
    return fetch(api + '/api/v1/appeal?' + qs, { signal: ctl && ctl.signal, credentials: 'omit', headers: { Accept: 'application/json' } })
      .then((r) => (r.status === 200 ? r.json() : null))
      .then((body) => {
        const a = body && body.appeal;
        if (!a || typeof a !== 'object' || !a.cta || off()) throw 0;
        Object.assign(a, { article, lang });
        if (!render(el, a)) throw 0;
        s.shown[a.campaign] = 1;
      })
      .catch(() => {
        el._donations = 0;
        if (el.shadowRoot && !mounted.some((m) => m.el === el)) el.shadowRoot.innerHTML = '';
      })
      .then(() => clearTimeout(t));
  };

  const run = () => {
    const els = all(d, '[data-donations-appeal]');
    if (off() || !els.length) return Promise.resolve();
    const s = loadState(), day = new Date().toISOString().slice(0, 10), reads = (s.reads[day] = s.reads[day] || []);
    els.forEach((el) => { if (reads.indexOf(articleOf(el)) < 0) reads.push(articleOf(el)); });
    save(s);
    s.views = Object.keys(s.reads).reduce((n, k) => n + s.reads[k].length, 0);
    s.shown = {};
    return Promise.all(els.map((el) => place(el, s))).then(() => {
      /* one impression per campaign per page view */
      const st = loadState();
      Object.keys(s.shown).forEach((c) => (st.imps[c] = st.imps[c] || []).push(Date.now()));
      save(st);
    }).catch(() => {});
  };

  if (w.IntersectionObserver) {
    io = new IntersectionObserver((entries) => entries.forEach((e) => {
      if (e.isIntersecting && e.intersectionRatio >= 0.5 && e.target._a) {
        track('view', e.target._a);
        io.unobserve(e.target);
      }
    }), { threshold: 0.5 });
  }

  const api_ = w.donations = {
    ready: d.readyState === 'loading' ? new Promise((ok) => d.addEventListener('DOMContentLoaded', ok)).then(run) : run(),
    optOut() {
      put(OPT, '1');
      put(KEY, null);
      queue.length = 0;
      mounted.slice().forEach((m) => { unmount(m); m.el._donations = 0; });
    },
    optIn() { put(OPT, null); return (api_.ready = run()); },
    scan: () => run(),
    /* render a given appeal object into el without fetching, counting or storing anything */
    preview: (el, a) => render(el, Object.assign({ lang: 'en', article: 'preview' }, a, { _pv: 1 })),
  };
})();
