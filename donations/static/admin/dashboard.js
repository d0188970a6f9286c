/* The admin dashboard (templates/admin/dashboard.html): fetches the JSON reports for the range
 * and currency in the page's config and draws them. Money arrives as integer minor units and is
 * shown with Intl.NumberFormat in its own currency (divided by 10 ** the currency's exponent,
 * which the page supplies); amounts in different currencies are never added together.
 */
(() => {
  'use strict';
  const d = document;
  const node = d.getElementById('dashboard-config');
  if (!node) return;
  const config = JSON.parse(node.textContent);
  const locale = config.locale || undefined;
  const range = { from: config.from, to: config.to };

  const exponentOf = (cur) => (cur in config.exponents ? config.exponents[cur] : 2);
  const money = (minor, cur) => {
    if (minor == null) return '—';
    const value = minor / 10 ** exponentOf(cur);
    try {
      return new Intl.NumberFormat(locale, { style: 'currency', currency: cur.toUpperCase() }).format(value);
    } catch (e) {
      return value.toFixed(exponentOf(cur)) + ' ' + cur.toUpperCase();
    }
  };
  const count = (n) => (n == null ? '—' : new Intl.NumberFormat(locale).format(n));
  const percent = (x, digits = 2) => (x == null ? '—'
    : new Intl.NumberFormat(locale, { style: 'percent', minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x));
  const pValue = (p) => (p == null ? '—' : p < 0.001 ? '< 0.001' : p.toFixed(3));

  const get = (url, params) => {
    const qs = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v != null && v !== ''));
    return fetch(url + (qs.toString() ? '?' + qs : ''), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then((r) => {
        if (r.status === 401) { location.reload(); throw new Error('signed out'); }
        if (!r.ok) throw new Error('the server answered ' + r.status);
        return r.json();
      });
  };

  /* --- small DOM helpers (text only: report values never become HTML) ------------------- */
  const el = (tag, attrs, children) => {
    const e = d.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => { if (v != null) e.setAttribute(k, v); });
    (children || []).forEach((c) => e.append(c instanceof Node ? c : String(c)));
    return e;
  };
  /* columns: [label, numeric?]; rows: arrays of cells (strings or nodes) */
  const table = (caption, columns, rows) => el('table', { class: 'data' }, [
    el('caption', { class: 'visually-hidden' }, [caption]),
    el('thead', {}, [el('tr', {}, columns.map(([label, num]) => el('th', { scope: 'col', class: num ? 'num' : null }, [label])))]),
    el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c, i) =>
      el(i === 0 ? 'th' : 'td', { scope: i === 0 ? 'row' : null, class: columns[i][1] ? 'num' : null }, [c]))))),
  ]);
  const slot = (name) => d.querySelector('[data-report="' + name + '"]');
  const fill = (name, ...nodes) => {
    const s = slot(name);
    if (!s) return;
    s.replaceChildren(...nodes);
    s.setAttribute('aria-busy', 'false');
  };
  const empty = (text) => el('p', { class: 'empty' }, [text || 'No data for this range yet.']);
  const failed = (name) => (err) => fill(name, el('p', { class: 'field-error' }, ['Could not load this report: ' + err.message + '.']));

  /* --- totals per currency --------------------------------------------------------------- */
  get(config.urls.summary, range).then((body) => {
    const rows = Object.entries(body.currencies || {}).sort(([a], [b]) => a.localeCompare(b)).map(([cur, t]) => [
      cur.toUpperCase(), count(t.count), money(t.gross, cur), money(t.fees, cur), money(t.refunds, cur),
      money(t.disputes, cur), el('strong', {}, [money(t.net, cur)]),
      money((t.one_off || {}).gross, cur) + ' (' + count((t.one_off || {}).count) + ')',
      money((t.recurring || {}).gross, cur) + ' (' + count((t.recurring || {}).count) + ')',
    ]);
    fill('summary', rows.length ? table('Totals per currency', [
      ['Currency'], ['Payments', 1], ['Gross', 1], ['Fees', 1], ['Refunds', 1], ['Disputes', 1], ['Net', 1],
      ['One-off (payments)', 1], ['Recurring (payments)', 1],
    ], rows) : empty());
  }).catch(failed('summary'));

  /* --- gross and net per day ------------------------------------------------------------- */
  const cur = config.currency;
  get(config.urls.daily, { from: range.from, to: range.to, currency: cur }).then((body) => {
    const series = body.series || [];
    const any = series.some((p) => p.gross || p.net || p.count);
    d.querySelector('[data-empty="daily"]').hidden = any;
    fill('daily', series.length ? table('Gross and net per day', [['Day'], ['Payments', 1], ['Gross', 1], ['Net', 1]],
      series.map((p) => [p.date, count(p.count), money(p.gross, cur), money(p.net, cur)])) : empty());
    const canvas = d.getElementById('daily-chart');
    if (!window.Chart || !canvas) return;
    const exp = 10 ** exponentOf(cur);
    const style = getComputedStyle(d.documentElement);
    const accent = style.getPropertyValue('--accent').trim() || '#0b4a8b';
    const ok = style.getPropertyValue('--ok').trim() || '#1e7a46';
    const chart = new window.Chart(canvas, {
      type: 'line',
      data: {
        labels: series.map((p) => p.date),
        datasets: [
          { label: 'Gross', data: series.map((p) => p.gross / exp), borderColor: accent, backgroundColor: accent + '33', fill: true, tension: 0.2, pointRadius: series.length > 60 ? 0 : 2 },
          { label: 'Net', data: series.map((p) => p.net / exp), borderColor: ok, backgroundColor: ok, borderDash: [6, 4], tension: 0.2, pointRadius: series.length > 60 ? 0 : 2 },
        ],
      },
      options: {
        maintainAspectRatio: false,
        animation: window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches ? false : { duration: 300 },
        interaction: { mode: 'index', intersect: false },
        scales: {
          y: { beginAtZero: true, ticks: { callback: (v) => money(Math.round(v * exp), cur) } },
          x: { ticks: { maxTicksLimit: 10 } },
        },
        plugins: { tooltip: { callbacks: { label: (c) => c.dataset.label + ': ' + money(Math.round(c.parsed.y * exp), cur) } } },
      },
    });
    canvas.dataset.ready = '1';
    window.donationsDashboard = Object.assign(window.donationsDashboard || {}, { daily: chart });
  }).catch((err) => {
    failed('daily')(err);
    d.querySelector('[data-empty="daily"]').hidden = true;
  });

  /* --- the funnel per campaign and variant ---------------------------------------------- */
  get(config.urls.experiments, { currency: cur }).then((body) => {
    const campaigns = body.campaigns || [];
    if (!campaigns.length) return fill('experiments', empty('No live or paused campaign has data yet.'));
    fill('experiments', ...campaigns.map((c) => {
      const notes = [];
      if (c.srm && c.srm.warning) {
        notes.push(el('p', { class: 'flash flash--warn' }, [
          'Sample ratio mismatch: impressions are not split as the weights say (p = ' + pValue(c.srm.p_value) +
          '). Check the variants before trusting this test.']));
      }
      if (c.enough_data === false) {
        notes.push(el('p', { class: 'badge badge--muted' }, ['Not enough data yet: read these figures as early signs only.']));
      }
      const rows = (c.variants || []).map((v) => {
        const ci = v.conversion_ci95;
        return [
          v.variant, count(v.impressions), count(v.clicks),
          percent(v.impressions ? v.clicks / v.impressions : null),
          count(v.contributions),
          percent(v.conversion_rate) + (ci ? ' (' + percent(ci[0]) + ' – ' + percent(ci[1]) + ')' : ''),
          money(v.gross, cur), money(v.revenue_per_1000_impressions == null ? null : Math.round(v.revenue_per_1000_impressions), cur),
          v.variant === 'control' ? 'baseline' : pValue(v.p_value_vs_control),
        ];
      });
      const link = el('a', { href: config.urls.campaign.replace('__id__', encodeURIComponent(c.campaign)) }, [c.campaign]);
      return el('div', { class: 'funnel' }, [
        el('h3', {}, [link]), ...notes,
        el('div', { class: 'table-scroll' }, [rows.length ? table('Funnel of ' + c.campaign, [
          ['Variant'], ['Impressions', 1], ['Clicks', 1], ['Click rate', 1], ['Contributions', 1],
          ['Conversion (95% interval)', 1], ['Gross', 1], ['Per 1,000 impressions', 1], ['p vs control', 1],
        ], rows) : empty()]),
      ]);
    }));
  }).catch(failed('experiments'));

  /* --- top articles ---------------------------------------------------------------------- */
  get(config.urls.articles, { from: range.from, to: range.to, limit: 10, currency: cur }).then((body) => {
    /* A long slug is cut with an ellipsis (CSS) to fit the card; the title holds all of it. */
    const rows = (body.articles || []).map((a) => [
      el('span', { class: 'truncate', title: a.article }, [a.article]), count(a.impressions), count(a.clicks), count(a.contributions), money(a.gross, cur), percent(a.conversion_rate),
    ]);
    fill('articles', rows.length ? table('Top articles', [
      ['Article'], ['Impressions', 1], ['Clicks', 1], ['Contributions', 1], ['Gross', 1], ['Conversion', 1],
    ], rows) : empty());
  }).catch(failed('articles'));

  /* --- recurring revenue ----------------------------------------------------------------- */
  get(config.urls.recurring, range).then((body) => {
    const rows = Object.entries(body.currencies || {}).sort(([a], [b]) => a.localeCompare(b)).map(([c, r]) => [
      c.toUpperCase(), count(r.active), money(r.mrr, c), count(r.new), count(r.canceled),
    ]);
    fill('recurring', rows.length ? table('Recurring revenue per currency', [
      ['Currency'], ['Active', 1], ['Monthly recurring revenue', 1], ['New', 1], ['Canceled', 1],
    ], rows) : empty('No recurring contributions yet.'));
  }).catch(failed('recurring'));
})();
