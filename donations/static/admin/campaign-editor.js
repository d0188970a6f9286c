/* The campaign editor (templates/admin/campaign_edit.html).
 *
 * Reads the form into a campaign document (API.md, "Campaign document"), sends it to the JSON
 * admin API with the session's CSRF token, and shows the 422 `errors` beside each field: the
 * server's one CampaignDocument schema is the only judge. While the editor types, the document
 * goes (debounced) to POST /api/v1/admin/campaigns/preview and the real widget draws the answer
 * in each placement through window.donations.preview (no fetch, no events, no reader state).
 */
(() => {
  'use strict';
  const d = document;
  const form = d.getElementById('campaign-form');
  if (!form) return;
  const config = JSON.parse(d.getElementById('campaign-config').textContent);
  const original = JSON.parse(d.getElementById('campaign-document').textContent);
  const csrf = (d.querySelector('meta[name="csrf-token"]') || {}).content || '';
  const $ = (sel, root) => (root || d).querySelector(sel);
  const $$ = (sel, root) => [...(root || d).querySelectorAll(sel)];
  const variantsBox = d.getElementById('variants');
  const summary = d.getElementById('error-summary');
  const saveStatus = d.getElementById('save-status');
  const previewStatus = d.getElementById('preview-status');
  let uid = 1000;

  /* --- reading values ------------------------------------------------------------------- */
  const exponentOf = (cur) => (cur in config.exponents ? config.exponents[cur] : 2);
  const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);
  const int = (text) => (/^-?\d+$/.test(text.trim()) ? parseInt(text, 10) : text.trim());
  /* "25.5" usd → 2550 with string arithmetic (no float rounding); anything else is sent as
     typed so that the schema names the field. */
  const minor = (text, cur) => {
    const t = text.trim(), exp = exponentOf(cur), m = /^(\d+)(?:[.,](\d+))?$/.exec(t);
    if (!m || (m[2] || '').length > exp) return t;
    return parseInt(m[1] + (m[2] || '').padEnd(exp, '0'), 10);
  };
  const minorList = (text, cur) => text.split(/[\s,;]+/).filter(Boolean).map((x) => minor(x, cur));
  const datetime = (text) => (!text ? null : text.length === 16 ? text + ':00Z' : text + 'Z');

  const setPath = (obj, path, value) => {
    const keys = path.split('.');
    let o = obj;
    keys.slice(0, -1).forEach((k) => { o = o[k] = o[k] && typeof o[k] === 'object' ? o[k] : {}; });
    o[keys[keys.length - 1]] = value;
  };

  /* The document the form describes, and where each of its paths is edited (for errors). */
  const read = () => {
    const doc = JSON.parse(JSON.stringify(original));
    const where = new Map();
    $$('[data-path]', form).forEach((el) => {
      if (el.closest('[data-variant]')) return;
      const path = el.getAttribute('data-path'), kind = el.getAttribute('data-kind');
      if (!kind) { where.set(path, el); return; }
      const v = el.value || '';
      where.set(path, el);
      if (kind === 'text') setPath(doc, path, v.trim());
      else if (kind === 'int') setPath(doc, path, int(v));
      else if (kind === 'int?') setPath(doc, path, v.trim() === '' ? null : int(v));
      else if (kind === 'float') setPath(doc, path, v.trim() === '' ? 0 : (isFinite(+v) ? +v : v));
      else if (kind === 'list') setPath(doc, path, list(v));
      else if (kind === 'datetime') setPath(doc, path, datetime(v));
      else if (kind === 'checks') setPath(doc, path, $$('input:checked', el).map((c) => c.value));
    });
    const amount = $('[data-kind="goal"]', form), cur = $('[data-kind="goal-currency"]', form).value;
    doc.goal = amount.value.trim() === '' ? null : { amount: minor(amount.value, cur), currency: cur };
    where.set('goal', amount);
    doc.variants = $$('[data-variant]', variantsBox).map((card, i) => {
      const before = (original.variants || []).find((v) => v.id === card.getAttribute('data-original'));
      const v = Object.assign({}, before || {});
      where.set('variants.' + i, card);
      $$('[data-v]', card).forEach((el) => {
        const key = el.getAttribute('data-v');
        where.set('variants.' + i + '.' + key, el);
        v[key] = key === 'weight' ? int(el.value) : key === 'id' ? el.value.trim() : el.value;
      });
      v.amounts = {};
      where.set('variants.' + i + '.amounts', $('[data-amounts-field]', card));
      $$('[data-amount-row]', card).forEach((row) => {
        const c = $('[data-a="currency"]', row).value.trim().toLowerCase();
        if (!c) return;
        const base = 'variants.' + i + '.amounts.' + c;
        where.set(base, $('[data-a="currency"]', row));
        v.amounts[c] = {};
        ['one_off', 'monthly', 'annual'].forEach((f) => {
          const el = $('[data-a="' + f + '"]', row);
          v.amounts[c][f] = minorList(el.value, c);
          where.set(base + '.' + f, el);
        });
      });
      return v;
    });
    return { doc, where };
  };

  /* --- errors in plain words ------------------------------------------------------------- */
  /* Where a field is, in the words `donations campaigns load` prints (the server's
     donations/admin/campaign_errors.py walks paths the same way and gives the words):
     "variants.0.amounts.usd.value.one_off.1" → "Variant 1, amounts in USD, one-off, amount 2". */
  const W = Object.assign({ top: {}, inner: {}, frequencies: {}, quoted: {} }, config.error_words || {});
  const isIndex = (s) => /^\d+$/.test(s);
  const describe = (full) => {
    const parts = full.filter((p) => p !== '_schema'), words = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i], parent = i ? parts[i - 1] : null;
      if (parent === 'variants' && isIndex(part)) words.splice(-1, 1, 'Variant ' + (+part + 1));
      else if (parent === 'amounts' || parent === 'translations') {
        const kind = parts[i + 1];
        if (kind === 'key') words.push((parent === 'amounts' ? 'currency' : 'language') + ' “' + part + '”');
        else if (parent === 'amounts') words.splice(-1, 1, 'amounts in ' + part.toUpperCase());
        else words.splice(-1, 1, 'translation “' + part + '”');
        if (kind === 'key' || kind === 'value') i++;
      } else if (isIndex(part)) words.push((parent in W.frequencies ? 'amount ' : 'item ') + (+part + 1));
      else if (i === 0) words.push(W.top[part] || '“' + part + '”');
      else if (parent === 'value' && part in W.frequencies) words.push(W.frequencies[part]);
      else words.push(W.inner[part] || '“' + part + '”');
    }
    return words.join(', ');
  };
  const plain = (message, full) => {
    const last = full[full.length - 1];
    if ((W.reworded || {})[message]) return W.reworded[message];
    if (message === W.pattern && last === 'key') return full.includes('translations') ? W.language_code : W.currency_code;
    if (message === W.pattern && last === 'currency') return W.currency_code;
    const noun = (W.lists || {})[last];
    let m;
    if (noun && (m = /^Length must be between (\d+) and (\d+)\.$/.exec(message))) return 'Give ' + m[1] + ' to ' + m[2] + ' ' + noun + '.';
    if (noun && (m = /^Longer than maximum length (\d+)\.$/.exec(message))) return 'Give at most ' + m[1] + ' ' + noun + '.';
    Object.keys(W.quoted).forEach((q) => { message = message.split(q).join(W.quoted[q]); });
    return message.split('`').join('');
  };
  const sentence = ([, message, full]) => {
    const where = describe(full);
    return (where ? where + ': ' : '') + plain(message, full);
  };

  /* --- errors beside fields ------------------------------------------------------------- */
  /* [the path of the form field, the message, the error's whole path] for every message */
  const flatten = (errors, prefix, out, full) => {
    full = full || [];
    if (Array.isArray(errors)) { errors.forEach((m) => out.push([prefix, String(m), full])); return out; }
    Object.keys(errors || {}).forEach((k) => {
      /* marshmallow reports a dict's bad key or value under "key" / "value" */
      const p = k === 'key' || k === 'value' || k === '_schema' ? prefix : (prefix ? prefix + '.' + k : k);
      flatten(errors[k], p, out, full.concat(k));
    });
    return out;
  };
  const clearErrors = () => {
    $$('.field-error', form).forEach((e) => e.remove());
    $$('[aria-invalid]', form).forEach((e) => e.removeAttribute('aria-invalid'));
    summary.hidden = true;
    $('ul', summary).innerHTML = '';
  };
  const showErrors = (errors) => {
    clearErrors();
    const { where } = read();
    const items = flatten(errors, '', []);
    items.forEach((item) => {
      const [path, message, full] = item;
      let p = path, el = where.get(p);
      while (!el && p.includes('.')) { p = p.slice(0, p.lastIndexOf('.')); el = where.get(p); }
      const target = el || form;
      const box = (target.closest && target.closest('.field')) || target;
      const note = d.createElement('p');
      note.className = 'field-error';
      note.id = 'err-' + ++uid;
      note.textContent = plain(message, full);
      if (target.matches && target.matches('input,select,textarea')) {
        target.setAttribute('aria-invalid', 'true');
        const by = (target.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
        target.setAttribute('aria-describedby', by.filter((x) => !x.startsWith('err-')).concat(note.id).join(' '));
        target.insertAdjacentElement('afterend', note);
      } else if (box === form) {
        form.insertBefore(note, form.firstChild);
      } else {
        box.appendChild(note);
      }
      const li = d.createElement('li'), a = d.createElement('a');
      a.href = '#' + (target.id || note.id);
      a.textContent = sentence(item);
      li.appendChild(a);
      $('ul', summary).appendChild(li);
    });
    summary.hidden = !items.length;
    if (items.length) summary.focus();
  };

  /* --- saving --------------------------------------------------------------------------- */
  const send = (method, url, body) => fetch(url, {
    method, credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': csrf },
    body: JSON.stringify(body),
  }).then((r) => r.json().catch(() => ({})).then((data) => ({ status: r.status, data })));

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const { doc } = read();
    const creating = config.creating;
    const button = d.getElementById('save');
    button.disabled = true;
    saveStatus.textContent = 'Saving…';
    const url = creating ? config.collection_url : config.item_url.replace('__id__', encodeURIComponent(config.id));
    send(creating ? 'POST' : 'PATCH', url, doc).then(({ status, data }) => {
      button.disabled = false;
      if (status === 200 || status === 201) {
        clearErrors();
        if (creating) {
          location.assign(config.edit_url.replace('__id__', encodeURIComponent(data.id)) + '?saved=1');
          return;
        }
        Object.keys(original).forEach((k) => delete original[k]);
        Object.assign(original, data);
        $$('[data-variant]', variantsBox).forEach((card, i) => card.setAttribute('data-original', (data.variants[i] || {}).id || ''));
        saveStatus.textContent = 'Saved ' + new Date().toLocaleTimeString() + '. Readers see it within seconds.';
      } else if (status === 422) {
        saveStatus.textContent = 'Not saved: please correct the highlighted fields.';
        showErrors(data.errors || { _schema: [data.detail || 'Invalid campaign.'] });
      } else if (status === 409) {
        saveStatus.textContent = 'Not saved.';
        showErrors({ id: [data.detail || 'A campaign with this id exists.'] });
      } else {
        saveStatus.textContent = 'Not saved: ' + (data.detail || 'the server answered ' + status) +
          (status === 403 || status === 401 ? ' (reload the page, signing in again if asked).' : '');
      }
    }).catch(() => {
      button.disabled = false;
      saveStatus.textContent = 'Not saved: the server could not be reached. Try again.';
    });
  });

  /* --- adding and removing variants and currencies --------------------------------------- */
  const fromTemplate = (id, replace) => {
    let html = d.getElementById(id).innerHTML;
    Object.keys(replace).forEach((k) => { html = html.split(k).join(replace[k]); });
    const t = d.createElement('template');
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  };
  const addVariant = () => {
    const card = fromTemplate('variant-template', { __n__: String(++uid) });
    const taken = new Set($$('[data-v="id"]', variantsBox).map((el) => el.value));
    let n = $$('[data-variant]', variantsBox).length, id;
    do { id = 'variant-' + String.fromCharCode(97 + (n++ % 26)); } while (taken.has(id));
    $('[data-v="id"]', card).value = id;
    $$('[data-variant-label]', card).forEach((s) => (s.textContent = id));
    variantsBox.appendChild(card);
    $('[data-v="heading"]', card).focus();
    schedule();
  };
  const addAmount = (card) => {
    const row = fromTemplate('amount-template', { __p__: card.getAttribute('data-prefix') + '-a' + ++uid });
    $('[data-amount-rows]', card).appendChild(row);
    $('[data-a="currency"]', row).focus();
  };
  const addButton = d.getElementById('add-variant');
  if (addButton) addButton.addEventListener('click', addVariant);
  variantsBox.addEventListener('click', (e) => {
    const t = e.target.closest('button');
    if (!t) return;
    const card = t.closest('[data-variant]');
    if (t.hasAttribute('data-add-amount')) addAmount(card);
    else if (t.hasAttribute('data-remove-amount')) {
      const row = t.closest('[data-amount-row]'), next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      (next ? $('input', next) : $('[data-add-amount]', card)).focus();
      schedule();
    } else if (t.hasAttribute('data-remove-variant')) {
      const cards = $$('[data-variant]', variantsBox);
      const other = cards[cards.indexOf(card) + 1] || cards[cards.indexOf(card) - 1];
      card.remove();
      (other ? $('[data-v="heading"]', other) : addButton).focus();
      schedule();
    }
  });
  /* keep the legend in step with the id */
  variantsBox.addEventListener('input', (e) => {
    if (e.target.getAttribute('data-v') === 'id') {
      $$('[data-variant-label]', e.target.closest('[data-variant]')).forEach((s) => (s.textContent = e.target.value || 'new'));
    }
  });

  /* --- live preview --------------------------------------------------------------------- */
  const pvVariant = d.getElementById('pv-variant');
  const pvCurrency = d.getElementById('pv-currency');
  const pvReads = d.getElementById('pv-reads');
  const hosts = $$('[data-preview]');
  let timer = 0, seq = 0;

  const syncVariantChoice = (ids) => {
    const current = pvVariant.value;
    pvVariant.innerHTML = '';
    ids.forEach((id) => {
      const o = d.createElement('option');
      o.value = o.textContent = id;
      pvVariant.appendChild(o);
    });
    if (ids.includes(current)) pvVariant.value = current;
  };
  const preview = () => {
    if (!pvVariant || !window.donations || !window.donations.preview) return;
    const { doc } = read();
    syncVariantChoice(doc.variants.map((v) => v.id).filter(Boolean));
    const mine = ++seq, body = {
      document: doc, variant: pvVariant.value || null, currency: pvCurrency.value,
      articles_read: Math.max(0, parseInt(pvReads.value, 10) || 0),
    };
    Promise.all(hosts.map((host) => {
      const placement = host.getAttribute('data-preview');
      return send('POST', config.preview_url, Object.assign({}, body, { placement }))
        .then((r) => ({ host, r }));
    })).then((answers) => {
      if (mine !== seq) return; /* a newer preview is on its way */
      const bad = answers.find(({ r }) => r.status !== 200);
      if (bad) {
        const errors = flatten((bad.r.data.errors || {}).document || bad.r.data.errors || {}, '', []);
        previewStatus.textContent = bad.r.status === 422
          ? 'Preview paused until the campaign is valid: ' + errors.map(sentence).slice(0, 3).join('; ')
          : 'Preview unavailable (' + (bad.r.data.detail || bad.r.status) + ').';
        previewStatus.className = 'preview-status preview-status--stale';
        return;
      }
      answers.forEach(({ host, r }) => window.donations.preview(host, r.data.appeal));
      previewStatus.textContent = 'Variant ' + answers[0].r.data.appeal.variant + ', up to date.';
      previewStatus.className = 'preview-status';
    }).catch(() => { previewStatus.textContent = 'Preview unavailable: the server could not be reached.'; });
  };
  const schedule = () => { clearTimeout(timer); timer = setTimeout(preview, 350); };
  form.addEventListener('input', schedule);
  form.addEventListener('change', schedule);
  [pvVariant, pvCurrency, pvReads].forEach((el) => el && el.addEventListener('change', preview));
  if (pvReads) pvReads.addEventListener('input', schedule);
  /* editing a variant shows that variant */
  variantsBox.addEventListener('focusin', (e) => {
    const card = e.target.closest('[data-variant]');
    const id = card && $('[data-v="id"]', card).value;
    if (pvVariant && id && pvVariant.value !== id && [...pvVariant.options].some((o) => o.value === id)) {
      pvVariant.value = id;
      schedule();
    }
  });
  /* widget.js is deferred before this script, so window.donations exists by now */
  preview();
})();
