/* donations widget: for each [data-donations-appeal], asks GET /api/v1/appeals (the same URL for
 * every reader of the article: docs/appeals-in-the-browser.md), decides for this reader with the
 * state kept in localStorage (never sent) and renders the appeal (shadow DOM); any failure leaves
 * the page untouched. Usage: templates/demo_article.html. */
(() => {
  'use strict';
  const w = window, d = document;
  if (w.donations || !Element.prototype.attachShadow || !w.fetch || !w.URL || !w.Promise) return;

  /* User Timing marks: a page (or bench/nginx_cache.py) can measure script start → first appeal */
  const mark = (n) => { try { performance.mark('donations:' + n); } catch (e) { /* old browser */ } };
  mark('start');
  let rendered = 0;

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

  /* the article's address: its canonical link, else this page's, without the fragment */
  const pageUrl = () => {
    const c = d.querySelector('link[rel="canonical"]');
    try { const u = new URL((c && c.href) || location.href); u.hash = ''; return /^https?:$/.test(u.protocol) ? u.href : location.origin; } catch (e) { return location.origin; }
  };
  const esc = (v) => String(v == null ? '' : v).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
  const money = (minor, currency, lang) => {
    try {
      const exp = new Intl.NumberFormat(lang, { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
      const v = minor / 10 ** exp;
      return new Intl.NumberFormat(lang, { style: 'currency', currency, minimumFractionDigits: v % 1 ? exp : 0 }).format(v);
    } catch (e) { return minor / 100 + ' ' + currency; }
  };
  /* The widget's own words: the answer's `ui` (the page's language, appeals/ui.py), else these */
  const EN = { close: 'Close', label: 'Support our journalism', raised: '{raised} raised', goal: 'Goal {goal}',
    first: 'Be among the first to give', secure: 'Secure payment by card.', cancel_any_time: 'Cancel at any time.',
    'per.monthly': '{amount} a month', 'per.annual': '{amount} a year', amount: 'Amount', progress: 'Appeal progress',
    progress_text: '{raised} raised of our {goal} goal', 'read.one': 'You\u2019ve read {n} article in the last 30 days',
    'read.other': 'You\u2019ve read {n} articles in the last 30 days' };
  /* words[k] escaped, each {name} replaced by html[name] (already HTML) */
  const say = (a, k, html) => esc((obj(a.ui)[k] != null ? a.ui[k] : EN[k]) || '')
    .replace(/\{(\w+)\}/g, (m, n) => (html && n in html ? html[n] : m));
  const plural = (lang, n) => { try { return new Intl.PluralRules(lang).select(n); } catch (e) { return 'other'; } };
  const CSS = `:host{all:initial;display:block}*{box-sizing:border-box}
.w{--a:var(--donations-accent,var(--b,#b3121d));--k:#121212;font:16px/1.5 system-ui,sans-serif;color:var(--k)}
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
.cta{display:inline-block;padding:.7rem 1.3rem;border-radius:99px;background:var(--a);color:var(--donations-on-accent,var(--o,#fff));font-weight:700;text-decoration:none}
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

  const ticker = (a) => {
    const t = a.ticker, lang = a.lang;
    if (!t || !(t.goal > 0)) return '';
    const raised = Math.max(0, t.raised || 0), r = esc(money(raised, t.currency, lang)), g = esc(money(t.goal, t.currency, lang));
    return `<div class="t"><div class="bar" role="progressbar" aria-label="${say(a, 'progress')}" aria-valuemin="0"
 aria-valuemax="${t.goal}" aria-valuenow="${Math.min(raised, t.goal)}" aria-valuetext="${say(a, 'progress_text', { raised: r, goal: g })}">
<i data-w="${Math.min(100, Math.round(raised / t.goal * 100))}"></i></div>
<div class="tl" aria-hidden="true"><span>${raised ? say(a, 'raised', { raised: `<b>${r}</b>` }) : say(a, 'first')}</span><span>${say(a, 'goal', { goal: g })}</span></div></div>`;
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
    /* the thank-you page links back here (the shared answer cannot know the page's address) */
    if (!cta.searchParams.get('url') && /^https?:$/.test(location.protocol)) cta.searchParams.set('url', pageUrl());
    const close = a.dismissible ? `<button type="button" class="x" aria-label="${say(a, 'close')}">&times;</button>` : '';
    const link = `<a class="cta" href="${esc(cta.href)}">${esc(a.cta.label)}</a>`;
    const label = `role="complementary" aria-label="${say(a, 'label')}"`;
    let html;
    if (kind === 'banner') {
      html = `<div class="p bn" ${label}><div class="in"><p>${esc(a.heading)}</p>${link}</div>${close}</div>`;
    } else {
      const n = +a.articles_read, ui = obj(a.ui), read = 'read.' + plural(lang, n);
      const inner = (n >= 3 ? `<p class="r">${say(a, ui[read] != null || EN[read] ? read : 'read.other', { n: String(n) })}</p>` : '') +
        `<h2 id="${id}">${esc(a.heading)}</h2><div class="b">${a.body_html || ''}</div>${ticker(a)}` +
        (presets.length ? `<div class="am" role="group" aria-label="${say(a, 'amount')}">` + presets.map((v) => {
          const m = esc(money(v, am.currency, lang));
          return `<button type="button" data-amount="${+v}" aria-pressed="${v === chosen}">${freq === 'one_off' ? m : say(a, 'per.' + freq, { amount: m })}</button>`;
        }).join('') + '</div>' : '') +
        `${link}<p class="pm">${say(a, 'secure')}${freq === 'one_off' ? '' : ' ' + say(a, 'cancel_any_time')}</p>${close}`;
      html = kind === 'gate'
        ? `<div class="ov"><div class="p dl" role="dialog" aria-modal="true" aria-labelledby="${id}" tabindex="-1">${inner}</div></div>`
        : `<div class="p ep" ${label}>${inner}</div>`;
    }
    root.innerHTML = `<div class="w" lang="${esc(lang)}">${html}</div>`;
    styles(root);
    /* the newsroom's accent (NEWSROOM_ACCENT_COLOR), unless the page sets --donations-accent */
    const b = obj(a.brand), hex = /^#[0-9a-f]{6}$/i;
    if (hex.test(b.accent || '')) root.querySelector('.w').style.setProperty('--b', b.accent);
    if (hex.test(b.on_accent || '')) root.querySelector('.w').style.setProperty('--o', b.on_accent);
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
    if (!rendered++) mark('rendered');
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

  /* bucket(a, b, c): FNV-1a 32 over the UTF-8 bytes of "a:b:c", MurmurHash3's fmix32, / 2^32 */
  const bucket = (...p) => {
    let h = 0x811c9dc5;
    new TextEncoder().encode(p.join(':')).forEach((b) => { h = Math.imul(h ^ b, 0x1000193); });
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
  };
  const num = (v, dflt) => (typeof v === 'number' && isFinite(v) ? v : dflt);
  const weight = (vs) => (Array.isArray(vs) ? vs : []).reduce((n, v) => n + num(v.weight, 0), 0);
  /* RFC 3339 (a time without a zone is UTC) → ms; none → null */
  const ms = (v) => (v == null || v === '' ? null : Date.parse(/(z|[+-]\d\d:?\d\d)$/i.test(v) ? v : v + 'Z'));

  /* The reader's decision, as donations/appeals/reader.py (docs/appeals-in-the-browser.md):
     answer = GET /api/v1/appeals; reader = {views, rid, dismissed: {c: ms}, seen: {c: n},
     supporter: {kind, since, expires} (ms) | null}; → {c: candidate, v: variant} | null */
  const decide = (ans, r, now) => {
    const rules = obj(ans.rules), views = +r.views || 0, dis = obj(r.dismissed), seen = obj(r.seen);
    let s = r.supporter;
    if (s && s.expires != null && s.expires <= now) s = null;
    if (s && (s.kind === 'recurring' ||
      (s.kind === 'one_off' && now - s.since < num(rules.one_off_supporter_days, 90) * DAY))) return null;
    if (ans.placement === 'gate' && (s || views < num(rules.gate_after_articles, 5))) return null;
    const c = (Array.isArray(ans.candidates) ? ans.candidates : []).find((c) => {
      const f = obj(c.frequency), reads = obj(c.articles_read), start = ms(c.starts_at), end = ms(c.ends_at);
      const cap = f.max_impressions, d = dis[c.campaign];
      return !(start != null && now < start) && !(end != null && now >= end) &&
        views >= num(reads.min, 0) && !(reads.max != null && views > reads.max) &&
        !(d != null && now - d < num(f.after_dismiss_days, 14) * DAY) &&
        !(cap != null && (seen[c.campaign] || 0) >= cap) && weight(c.variants) > 0;
    });
    if (!c) return null;
    const rid = String(r.rid || ''), vs = c.variants;
    if (c.holdback > 0 && bucket(c.campaign, 'holdback', rid) < c.holdback) return null;
    const point = bucket(c.campaign, 'variant', rid) * weight(vs);
    let sum = 0;
    return { c, v: vs.find((v) => point < (sum += num(v.weight, 0))) || vs[vs.length - 1] };
  };

  /* The supporter token's payload, unchecked ({k, s, e}: the server checks the signature when
     it is sent there); a compressed or unreadable one is none. Times in ms. */
  const b64 = (v) => atob(v.replace(/-/g, '+').replace(/_/g, '/'));
  const supporter = () => {
    try {
      const p = String(get(SUP) || '').split('.'), j = JSON.parse(b64(p[0]));
      /* a token from before they carried s and e: its signing time, valid 30 days */
      const ts = [...b64(p[1])].reduce((n, ch) => n * 256 + ch.charCodeAt(0), 0);
      if (/^(recurring|one_off)$/.test(j.k)) {
        return { kind: j.k, since: num(j.s, ts) * 1e3, expires: num(j.e, ts + 2592e3) * 1e3 };
      }
    } catch (e) { /* none */ }
    return null;
  };

  const controller = () => (w.AbortController ? new AbortController() : null);
  const getJSON = (url, ctl) => fetch(url, { signal: ctl && ctl.signal, credentials: 'omit',
    headers: { Accept: 'application/json' } }).then((r) => { if (r.status !== 200) throw 0; return r.json(); });
  /* the campaigns' version: asked once per page (a failure is asked again by the next scan) */
  let ver = null;
  const version = () => ver || (ver = (() => {
    const ctl = controller(), t = setTimeout(() => ctl && ctl.abort(), TIMEOUT);
    return getJSON(api + '/api/v1/appeals/version', ctl)
      .then((b) => { clearTimeout(t); if (b == null || b.version == null) throw 0; return b.version; })
      .catch((e) => { clearTimeout(t); ver = null; throw e; });
  })());

  const place = (el, s) => {
    if (el._donations) return Promise.resolve();
    el._donations = 1;
    const article = articleOf(el), attr = (n) => el.getAttribute('data-' + n);
    let lang = (attr('lang') || d.documentElement.lang || 'en').toLowerCase();
    if (!/^[a-z]{2,3}(-[a-z0-9]{2,8})?$/.test(lang)) lang = 'en';
    const placement = attr('placement') || 'epic';
    /* only what describes the page, in a fixed order: the same URL for every reader */
    const q = [['article', article], ['placement', placement], ['section', attr('section')],
      ['tags', String(attr('tags') || '').split(',').map((x) => x.trim()).filter(Boolean).join(',')],
      ['lang', lang]];
    const ctl = controller(), t = setTimeout(() => ctl && ctl.abort(), TIMEOUT);
    return version()
      .then((v) => getJSON(api + '/api/v1/appeals?' + q.concat([['v', v]]).filter((p) => p[1] != null && p[1] !== '')
        .map((p) => p[0] + '=' + encodeURIComponent(p[1])).join('&'), ctl))
      .then((ans) => {
        const now = Date.now(), seen = {};
        (ans.candidates || []).forEach((c) => {
          const per = num(obj(c.frequency).per_days, 30) * DAY;
          seen[c.campaign] = (s.imps[c.campaign] || []).filter((x) => now - x < per).length;
        });
        const pick = decide(ans, { views: s.views, rid: s.rid, dismissed: s.dis, seen, supporter: s.sup }, now);
        if (!pick || off()) throw 0;
        const { c, v } = pick;
        const a = { impression: v.impression, campaign: c.campaign, variant: v.id, placement,
          heading: v.heading, body_html: v.body_html, cta: v.cta, amounts: v.amounts, ticker: c.ticker,
          dismissible: c.dismissible, articles_read: s.views, lang, article, ui: ans.ui, brand: ans.brand };
        if (!a.cta || !render(el, a)) throw 0;
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
    s.sup = supporter();
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
    /* for tests (tests/conformance): the decision and the bucket, nothing fetched or stored */
    _decide: (ans, r, now) => { const p = decide(obj(ans), obj(r), now); return p && { campaign: p.c.campaign, variant: p.v.id }; },
    _bucket: bucket,
  };
})();
