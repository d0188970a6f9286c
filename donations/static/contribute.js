/*
 * The hosted contribution form (/contribute).
 *
 * Money is integer minor units everywhere; what the reader types is parsed as a string and
 * never goes through a float. The fee shown for "cover the processing fee" uses the server's
 * exact formula, total = ceil((amount + fixed) / (1 - rate)), in BigInt arithmetic.
 *
 * Flow (see API.md and donations/checkout/views.py):
 *   POST /api/v1/contributions → one-off: stripe.createPaymentMethod + POST …/{id}/confirm
 *   (+ stripe.confirmCardPayment when 3-D Secure is needed); recurring: stripe.confirmCardSetup
 *   + POST …/{id}/subscribe. Then /contribute/thank-you?contribution={id}.
 */
(function () {
  'use strict';

  var config = JSON.parse(document.getElementById('checkout-config').textContent);
  // The page's words in its language (the server's catalogs); {name} placeholders are ours.
  var STRINGS = JSON.parse(document.getElementById('checkout-strings').textContent);
  var currencies = config.currencies;
  var FREQUENCIES = ['one_off', 'monthly', 'annual'];
  var ATTRIBUTION = ['article', 'campaign', 'variant', 'placement', 'impression'];
  // Stripe's own messages (declines, card errors from the API) are English: other languages
  // get our translated sentence instead.
  var PROVIDER_WORDS = !config.lang || config.lang === 'en';

  /** A translated string with its {placeholders} filled in. */
  function t(key, values) {
    var text = STRINGS[key] !== undefined ? STRINGS[key] : key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && values[name] !== undefined ? String(values[name]) : whole;
    });
  }

  // Suggested amounts in minor units; other currencies scale the two-decimal set.
  var PRESETS = {
    _2: { one_off: [1000, 2500, 5000, 10000], monthly: [500, 1000, 2000, 5000],
          annual: [5000, 10000, 25000, 50000] },
    jpy: { one_off: [1000, 3000, 5000, 10000], monthly: [500, 1000, 3000, 5000],
           annual: [5000, 10000, 30000, 50000] },
  };

  var $ = function (id) { return document.getElementById(id); };
  var form = $('contribute-form');
  var el = {
    errors: $('form-errors'),
    presets: $('presets'),
    custom: $('custom-amount'),
    currency: $('currency'),
    badge: $('currency-badge'),
    symbol: $('currency-symbol'),
    hint: $('amount-hint'),
    amountError: $('amount-error'),
    email: $('email'),
    emailError: $('email-error'),
    name: $('name'),
    nameError: $('name-error'),
    cover: $('cover-fees'),
    feeExtra: $('fee-extra'),
    feeGift: $('fee-gift'),
    card: $('card-element'),
    cardError: $('card-error'),
    summary: $('summary'),
    submit: $('submit'),
    submitLabel: $('submit-label'),
    recurringNote: $('recurring-note'),
  };

  // --- exact money arithmetic ---------------------------------------------------------------

  function rule() { return currencies[state.currency]; }

  /** A decimal string ("0.029", "2.9E-2") as an exact fraction of BigInts {num, den}. */
  function decimalFraction(text) {
    var m = /^\s*(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/.exec(String(text));
    if (!m || (m[1] === '' && !m[2])) throw new Error('bad decimal: ' + text);
    var frac = m[2] || '';
    var num = BigInt((m[1] || '0') + frac);
    var scale = frac.length - parseInt(m[3] || '0', 10);
    if (scale >= 0) return { num: num, den: 10n ** BigInt(scale) };
    return { num: num * 10n ** BigInt(-scale), den: 1n };
  }

  /** The charged total when the reader covers the fee: ceil((amount + fixed) * den / (den - num)). */
  function grossUp(amount, r) {
    var rate = decimalFraction(r.fee_rate);
    var n = (BigInt(amount) + BigInt(r.fee_fixed)) * rate.den;
    var d = rate.den - rate.num;
    var q = n / d;
    if (n % d !== 0n) q += 1n;
    return Number(q);
  }

  function chargeFor(amount, cover) {
    if (!cover) return { total: amount, fee: 0 };
    var total = grossUp(amount, rule());
    return { total: total, fee: total - amount };
  }

  /**
   * What the reader typed, in major units, as integer minor units (or {error}).
   * Accepts "25", "25.5", "25,50", "1,000", "1 000.00", "1.000,50"; never parses through a
   * float. The page's decimal sign is always the decimal point (English ".", Russian ","): the
   * other sign followed by exactly three digits groups thousands ("1,000" in English, "1.000"
   * in Russian), so "2,505" on a Russian page is 2.505 (refused for usd), never 2505.
   */
  function parseMajor(text, exp) {
    var s = String(text).replace(/[\s\u00a0\u202f'_]/g, '');
    if (s === '') return { empty: true };
    if (/^\.\d/.test(s)) s = '0' + s;  // ".5"
    var intPart, fracPart = '';
    var group = decimalSign() === ',' ? '.' : ',';
    var simple = /^(\d+)(?:([.,])(\d*))?$/.exec(s);
    var grouped = /^(\d{1,3}([.,])\d{3}(?:\2\d{3})*)(?:([.,])(\d*))?$/.exec(s);
    if (simple) {
      intPart = simple[1];
      fracPart = simple[3] || '';
      // "1,000" (English) in a currency with fewer than 3 decimals: a thousands separator.
      // The page's own decimal sign never is ("2.505" is refused for usd, not read as 2505).
      if (simple[2] === group && fracPart.length === 3 && exp < 3) {
        intPart += fracPart;
        fracPart = '';
      }
    } else if (grouped && (!grouped[3] || grouped[3] !== grouped[2])) {
      intPart = grouped[1].split(grouped[2]).join('');
      fracPart = grouped[4] || '';
    } else {
      return { error: t('not_a_number', { example: example(exp) }) };
    }
    if (fracPart.length > exp) {
      return { error: exp === 0
        ? t('no_decimals', { currency: state.currency.toUpperCase() })
        : t('decimals', { places: exp }) };
    }
    intPart = intPart.replace(/^0+(?=\d)/, '');
    if (intPart.length > 12) return { error: t('too_large') };
    var minor = BigInt(intPart) * 10n ** BigInt(exp) + BigInt((fracPart + '000').slice(0, exp) || '0');
    return { minor: Number(minor) };
  }

  function example(exp) { return exp === 0 ? '1500' : '25' + decimalSign() + (exp === 3 ? '000' : '00'); }

  function locale() { return config.lang || document.documentElement.lang || undefined; }

  /** Exact decimal string of minor units, e.g. 2603 → "26.03" (exp 2), 1500 → "1500" (exp 0). */
  function majorString(minor, exp) {
    var negative = minor < 0;
    var digits = String(Math.abs(minor));
    if (exp > 0) {
      digits = digits.padStart(exp + 1, '0');
      digits = digits.slice(0, -exp) + '.' + digits.slice(-exp);
    }
    return (negative ? '-' : '') + digits;
  }

  function formatMoney(minor, code, opts) {
    var exp = currencies[code] ? currencies[code].exponent : 2;
    var options = { style: 'currency', currency: code.toUpperCase(),
                    minimumFractionDigits: exp, maximumFractionDigits: exp };
    if (opts && opts.trim && minor % Math.pow(10, exp) === 0) options.minimumFractionDigits = 0;
    try {
      // Intl formats decimal strings exactly.
      return new Intl.NumberFormat(locale(), options).format(majorString(minor, exp));
    } catch (e) {
      return majorString(minor, exp) + ' ' + code.toUpperCase();
    }
  }

  /** The decimal sign of the page's language ("." in English, "," in Russian). */
  function decimalSign() {
    try {
      var parts = new Intl.NumberFormat(locale()).formatToParts(1.5);
      for (var i = 0; i < parts.length; i++) if (parts[i].type === 'decimal') return parts[i].value;
    } catch (e) { /* fall through */ }
    return '.';
  }

  /** Minor units as the reader would type them: "12.34" in English, "12,34" in Russian. */
  function typedAmount(minor, exp) { return majorString(minor, exp).replace('.', decimalSign()); }

  function currencySymbol(code) {
    try {
      var parts = new Intl.NumberFormat(locale(), { style: 'currency', currency: code.toUpperCase() })
        .formatToParts(0);
      for (var i = 0; i < parts.length; i++) if (parts[i].type === 'currency') return parts[i].value;
    } catch (e) { /* fall through */ }
    return code.toUpperCase();
  }

  // --- state --------------------------------------------------------------------------------

  var params = new URLSearchParams(window.location.search);
  var state = {
    currency: config.currency,
    frequency: 'monthly',
    preset: null,      // minor units of the chosen preset button, or null for the custom input
    started: null,     // {signature, contribution, stripe} of the contribution being paid
    busy: false,
  };

  function presetsFor(code, frequency) {
    var r = currencies[code];
    var list = PRESETS[code] && PRESETS[code][frequency];
    if (!list) {
      var scale = Math.pow(10, r.exponent - 2);
      list = PRESETS._2[frequency].map(function (v) { return Math.round(v * scale); });
    }
    list = list.filter(function (v) { return v >= r.minimum && v <= r.maximum; });
    if (list.length < 2) {
      list = [1, 2, 5, 10].map(function (k) { return r.minimum * k; })
        .filter(function (v) { return v <= r.maximum; });
    }
    return list;
  }

  /** The gift in minor units from the chosen preset or the custom field: {minor} | {error} | {empty}. */
  function currentAmount() {
    if (state.preset !== null) return { minor: state.preset };
    var parsed = parseMajor(el.custom.value, rule().exponent);
    if (parsed.minor === undefined) return parsed;
    var r = rule();
    if (parsed.minor < r.minimum) {
      return { minor: parsed.minor, error: t('minimum', { amount: formatMoney(r.minimum, state.currency) }) };
    }
    if (parsed.minor > r.maximum) {
      return { minor: parsed.minor, error: t('maximum', { amount: formatMoney(r.maximum, state.currency) }) };
    }
    return parsed;
  }

  // --- rendering ----------------------------------------------------------------------------

  function renderPresets() {
    var list = presetsFor(state.currency, state.frequency);
    el.presets.textContent = '';
    list.forEach(function (minor) {
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'preset';
      b.dataset.amount = String(minor);
      b.setAttribute('aria-pressed', String(state.preset === minor));
      var label = formatMoney(minor, state.currency, { trim: true });
      b.innerHTML = '';
      var strong = document.createElement('span');
      strong.className = 'preset__amount';
      strong.textContent = label;
      b.appendChild(strong);
      if (state.frequency !== 'one_off') {
        var per = document.createElement('span');
        per.className = 'preset__per';
        per.textContent = state.frequency === 'monthly' ? t('per_month_short') : t('per_year_short');
        b.appendChild(per);
      }
      b.setAttribute('aria-label', state.frequency === 'one_off' ? label
        : t('preset_' + state.frequency, { amount: label }));
      b.addEventListener('click', function () { choosePreset(minor); });
      el.presets.appendChild(b);
    });
  }

  function choosePreset(minor) {
    state.preset = minor;
    el.custom.value = '';
    setFieldError(el.custom, el.amountError, '');
    update();
  }

  function update() {
    var r = rule();
    var code = state.currency;
    el.badge.textContent = code.toUpperCase();
    el.symbol.textContent = currencySymbol(code);
    el.custom.placeholder = r.exponent === 0 ? '0' : '0' + decimalSign() + '0'.repeat(r.exponent);
    el.custom.setAttribute('inputmode', r.exponent === 0 ? 'numeric' : 'decimal');
    el.hint.textContent = t('limits', { minimum: formatMoney(r.minimum, code),
                                        maximum: formatMoney(r.maximum, code) });
    Array.prototype.forEach.call(el.presets.querySelectorAll('.preset'), function (b) {
      b.setAttribute('aria-pressed', String(Number(b.dataset.amount) === state.preset));
    });
    el.recurringNote.hidden = state.frequency === 'one_off';

    var amount = currentAmount();
    var gift = amount.minor !== undefined && !amount.error ? amount.minor : null;
    // The fee line always shows an exact figure: for the chosen gift, or the minimum until then.
    var basis = gift !== null ? gift : r.minimum;
    var fee = chargeFor(basis, true).fee;
    el.feeExtra.textContent = formatMoney(fee, code);
    el.feeExtra.dataset.minor = String(fee);
    el.feeGift.textContent = formatMoney(basis, code);

    if (gift === null) {
      delete el.submit.dataset.total;
      el.summary.textContent = amount.empty || amount.error === undefined
        ? t('choose_to_continue') : '';
      el.submitLabel.textContent = t('submit');
      return;
    }
    var charge = chargeFor(gift, el.cover.checked);
    var total = formatMoney(charge.total, code);
    el.submit.dataset.total = String(charge.total);
    el.submitLabel.textContent = t('submit_' + state.frequency, { amount: total });
    var text = t({ one_off: 'charged_once', monthly: 'charged_monthly', annual: 'charged_annually' }[state.frequency],
                 { total: total });
    if (charge.fee) {
      text += ' ' + t('includes_fee', { fee: formatMoney(charge.fee, code) });
    }
    el.summary.textContent = text;
  }

  function setFieldError(input, holder, message) {
    holder.textContent = message || '';
    if (input) {
      if (message) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }

  function showErrors(messages) {
    el.errors.textContent = '';
    if (!messages.length) return;
    if (messages.length === 1) {
      var p = document.createElement('p');
      p.textContent = messages[0];
      el.errors.appendChild(p);
    } else {
      var intro = document.createElement('p');
      intro.textContent = t('check_following');
      var ul = document.createElement('ul');
      messages.forEach(function (m) {
        var li = document.createElement('li');
        li.textContent = m;
        ul.appendChild(li);
      });
      el.errors.appendChild(intro);
      el.errors.appendChild(ul);
    }
    // The live region announces the messages; bring them into view for sighted readers.
    el.errors.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }

  function clearErrors() {
    showErrors([]);
    setFieldError(el.custom, el.amountError, '');
    setFieldError(el.email, el.emailError, '');
    setFieldError(el.name, el.nameError, '');
    setFieldError(el.card, el.cardError, '');
  }

  function setBusy(busy) {
    state.busy = busy;
    el.submit.disabled = busy;
    el.submit.setAttribute('aria-busy', String(busy));
    form.classList.toggle('is-busy', busy);
    if (busy) el.submitLabel.dataset.idle = el.submitLabel.textContent;
    el.submitLabel.textContent = busy ? t('processing') : (el.submitLabel.dataset.idle || t('submit'));
    if (!busy) update();
  }

  // --- prefill from the appeal's call to action ----------------------------------------------

  function prefill() {
    var frequency = params.get('frequency');
    if (FREQUENCIES.indexOf(frequency) >= 0) state.frequency = frequency;
    var radio = document.getElementById('frequency-' + state.frequency);
    if (radio) radio.checked = true;
    var amount = params.get('amount');  // minor units, as in the API
    if (amount && /^\d{1,12}$/.test(amount)) {
      var minor = Number(amount);
      if (presetsFor(state.currency, state.frequency).indexOf(minor) >= 0) {
        state.preset = minor;
      } else {
        state.preset = null;
        el.custom.value = typedAmount(minor, rule().exponent);
      }
    } else {
      var list = presetsFor(state.currency, state.frequency);
      state.preset = list[Math.min(1, list.length - 1)];
    }
    var email = params.get('email');
    if (email) el.email.value = email;
  }

  // Attribution is best effort: a malformed link must never stop a reader from giving, so a
  // value the API would refuse (too long, unknown placement) is left out rather than sent.
  var ATTRIBUTION_LIMITS = { article: 200, campaign: 100, variant: 100, placement: 16, impression: 64 };
  var PLACEMENTS = ['epic', 'banner', 'gate', 'direct'];

  function attribution() {
    var out = {};
    ATTRIBUTION.forEach(function (key) {
      var value = (params.get(key) || '').trim();
      if (!value || value.length > ATTRIBUTION_LIMITS[key]) return;
      if (key === 'placement' && PLACEMENTS.indexOf(value) < 0) return;
      out[key] = value;
    });
    return out;
  }

  // --- Stripe -------------------------------------------------------------------------------

  var stripe = null;
  var card = null;
  var cardEmpty = true;  // Stripe's change events say when the field is empty
  if (typeof window.Stripe === 'function' && config.publishable_key) {
    try {
      // Stripe.js writes its own messages and placeholders in the page's language.
      stripe = window.Stripe(config.publishable_key, config.lang ? { locale: config.lang } : undefined);
      card = stripe.elements().create('card', {
        hidePostalCode: false,
        style: {
          base: { fontSize: '16px', color: '#1a1a1a', fontFamily: 'system-ui, sans-serif',
                  '::placeholder': { color: '#767676' } },
          invalid: { color: '#b3261e' },
        },
      });
      card.mount('#card-element');
      card.on('change', function (event) {
        // Stripe.js says whether the field is empty; a change without details (the emulator's
        // fake) means something was typed.
        cardEmpty = event && typeof event.empty === 'boolean' ? event.empty : false;
        setFieldError(el.card, el.cardError, event && event.error
          ? (PROVIDER_WORDS ? event.error.message : t('card_incomplete')) : '');
      });
    } catch (e) {
      stripe = null;
    }
  }
  if (!stripe) {
    showErrors([t('card_not_loaded')]);
    el.submit.disabled = true;
  }

  // --- API ----------------------------------------------------------------------------------

  function ApiError(status, problem) {
    this.status = status;
    this.problem = problem || {};
    this.message = this.problem.detail || this.problem.title || t('went_wrong');
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new ApiError(response.status, data);
        return data;
      });
    }, function () {
      throw new ApiError(0, { detail: t('unreachable') });
    });
  }

  function fieldLabel(field) {
    return STRINGS['field_' + field] !== undefined ? STRINGS['field_' + field] : field;
  }

  /** The human check's token when the page has one (Turnstile or reCAPTCHA); else null. */
  function captchaToken() {
    if (!config.captcha) return null;
    var field = document.querySelector('[name="cf-turnstile-response"], [name="g-recaptcha-response"]');
    return field ? field.value : '';
  }

  /** Tokens are single-use: a fresh one for the next attempt. */
  function resetCaptcha() {
    try {
      if (config.captcha === 'turnstile' && window.turnstile) window.turnstile.reset();
      if (config.captcha === 'recaptcha' && window.grecaptcha) window.grecaptcha.reset();
    } catch (e) { /* the widget is gone; nothing to reset */ }
  }

  /** Put a 422's `errors` next to their fields; answers the messages for the summary. */
  function showValidation(errors) {
    var messages = [];
    Object.keys(errors || {}).forEach(function (field) {
      var list = errors[field];
      var text = Array.isArray(list) ? list.join(' ')
        : typeof list === 'object' ? Object.keys(list).map(function (k) {
            return k + ': ' + [].concat(list[k]).join(' ');
          }).join('; ')
        : String(list);
      // The fields readers fill in are explained in the page's own words.
      if (field === 'amount' || field === 'currency') {
        if (!PROVIDER_WORDS) text = t('choose_amount');
        setFieldError(el.custom, el.amountError, text);
      } else if (field === 'email') {
        text = t('email_invalid');
        setFieldError(el.email, el.emailError, text);
      } else if (field === 'name') {
        text = t('name_invalid');
        setFieldError(el.name, el.nameError, text);
      }
      messages.push(field === '_schema' ? text : fieldLabel(field) + ': ' + text);
    });
    return messages;
  }

  /** What Stripe.js said about the card, in the page's words: an English page shows Stripe's
   * own message; another language ours (Stripe's may be English, e.g. a decline). */
  function stripeMessage(error) {
    if (PROVIDER_WORDS && error && error.message) return error.message;
    if (error && (error.code === 'card_declined' || error.decline_code)) return t('declined');
    return t('card_unusable');
  }

  function thankYou(id) {
    var q = new URLSearchParams({ contribution: id });
    if (config.lang) q.set('lang', config.lang);
    if (config.return_url) q.set('url', config.return_url);
    window.location.assign(config.thank_you + '?' + q.toString());
  }

  var PAID = ['succeeded', 'processing', 'requires_capture'];

  async function payOneOff(started, billing) {
    var result = await stripe.createPaymentMethod({ type: 'card', card: card, billing_details: billing });
    if (!result || result.error || !result.paymentMethod) {
      throw { card: true, message: stripeMessage(result && result.error) };
    }
    var id = started.contribution.id;
    var confirmed = await postJSON(config.api + '/' + id + '/confirm',
                                   { payment_method: result.paymentMethod.id });
    if (confirmed.stripe && confirmed.stripe.requires_action) {
      var action = await stripe.confirmCardPayment(confirmed.stripe.client_secret);
      if (action.error) throw { card: true, message: stripeMessage(action.error) };
      var intent = action.paymentIntent;
      if (intent && PAID.indexOf(intent.status) < 0) {
        throw { card: true, message: (PROVIDER_WORDS && intent.last_payment_error && intent.last_payment_error.message) ||
          t('not_authenticated') };
      }
    }
    thankYou(id);
  }

  async function payRecurring(started, billing) {
    var result = await stripe.confirmCardSetup(started.stripe.client_secret, {
      payment_method: { card: card, billing_details: billing },
    });
    if (!result || result.error) throw { card: true, message: stripeMessage(result && result.error) };
    var id = started.contribution.id;
    try {
      await postJSON(config.api + '/' + id + '/subscribe', {});
    } catch (err) {
      // The card is now set up on this contribution; a new attempt starts a new one.
      state.started = null;
      throw err;
    }
    thankYou(id);
  }

  // --- submit -------------------------------------------------------------------------------

  function validate() {
    var messages = [];
    var amount = currentAmount();
    if (amount.empty) {
      setFieldError(el.custom, el.amountError, t('choose_amount'));
      messages.push(t('choose_amount'));
    } else if (amount.error) {
      setFieldError(el.custom, el.amountError, amount.error);
      messages.push(amount.error);
    }
    var email = el.email.value.trim();
    if (!email) {
      setFieldError(el.email, el.emailError, t('email_missing'));
      messages.push(t('email_missing'));
    } else if (!el.email.checkValidity()) {
      setFieldError(el.email, el.emailError, t('email_invalid'));
      messages.push(t('email_invalid'));
    }
    // An empty card field is flagged like the email, before anything is sent.
    if (cardEmpty) {
      setFieldError(el.card, el.cardError, t('card_missing'));
      messages.push(t('card_missing'));
    }
    return { messages: messages, amount: amount.minor, email: email };
  }

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    if (state.busy || !stripe) return;
    clearErrors();
    var checked = validate();
    if (checked.messages.length) {
      showErrors(checked.messages);
      return;
    }
    var name = el.name.value.trim();
    var body = {
      amount: checked.amount,
      currency: state.currency,
      frequency: state.frequency,
      email: checked.email,
      name: name || null,
      cover_fees: el.cover.checked,
      attribution: attribution(),
    };
    // The page's language (the appeal's, through its link), for receipts.
    if (config.lang) body.lang = config.lang;
    var signature = JSON.stringify(body);
    var captcha = captchaToken();
    if (captcha !== null) body.captcha_token = captcha;
    var billing = { email: checked.email };
    if (name) billing.name = name;

    setBusy(true);
    try {
      // A retry with the same details (e.g. another card after a decline) pays the same
      // contribution; changed details start a new one.
      if (!state.started || state.started.signature !== signature) {
        state.started = null;
        var created;
        try {
          created = await postJSON(config.api, body);
        } finally {
          if (captcha !== null) resetCaptcha();
        }
        state.started = { signature: signature, contribution: created.contribution, stripe: created.stripe };
      }
      if (state.started.stripe.intent === 'payment_intent') {
        await payOneOff(state.started, billing);
      } else {
        await payRecurring(state.started, billing);
      }
      // Navigating away: keep the button disabled.
      return;
    } catch (err) {
      setBusy(false);
      if (err instanceof ApiError) {
        if (err.status === 422 && err.problem.errors) {
          showErrors(showValidation(err.problem.errors));
        } else if (err.status === 402) {
          var declined = PROVIDER_WORDS ? err.message : t('declined');
          setFieldError(el.card, el.cardError, declined);
          showErrors([t('try_another_card', { message: declined })]);
        } else {
          if (err.status === 409) state.started = null;
          showErrors([err.message]);
        }
      } else if (err && err.card) {
        setFieldError(el.card, el.cardError, err.message);
        showErrors([err.message]);
      } else {
        showErrors([t('went_wrong')]);
        if (window.console) console.error(err);
      }
    }
  });

  // --- wiring -------------------------------------------------------------------------------

  Array.prototype.forEach.call(document.querySelectorAll('input[name="frequency"]'), function (radio) {
    radio.addEventListener('change', function () {
      if (!radio.checked) return;
      var before = presetsFor(state.currency, state.frequency);
      var index = state.preset !== null ? before.indexOf(state.preset) : -1;
      state.frequency = radio.value;
      var after = presetsFor(state.currency, state.frequency);
      if (index >= 0) state.preset = after[Math.min(index, after.length - 1)];
      renderPresets();
      update();
    });
  });

  el.currency.addEventListener('change', function () {
    if (!currencies[el.currency.value]) return;
    var before = presetsFor(state.currency, state.frequency);
    var index = state.preset !== null ? before.indexOf(state.preset) : -1;
    state.currency = el.currency.value;
    var after = presetsFor(state.currency, state.frequency);
    if (index >= 0) state.preset = after[Math.min(index, after.length - 1)];
    else el.custom.value = '';
    if (index < 0 && state.preset === null) state.preset = after[Math.min(1, after.length - 1)];
    renderPresets();
    update();
  });

  // Only malformed input is flagged while typing; limits are checked on submit (typing "1500"
  // passes through "1"), and nothing is shown on blur, which would move the submit button
  // under the pointer between mousedown and click.
  el.custom.addEventListener('input', function () {
    state.preset = el.custom.value.trim() ? null : state.preset;
    var parsed = parseMajor(el.custom.value, rule().exponent);
    setFieldError(el.custom, el.amountError, parsed.error || '');
    update();
  });
  el.custom.addEventListener('focus', function () {
    if (el.custom.value.trim()) state.preset = null;
    update();
  });
  el.cover.addEventListener('change', update);
  el.email.addEventListener('input', function () { setFieldError(el.email, el.emailError, ''); });

  prefill();
  renderPresets();
  update();
})();
