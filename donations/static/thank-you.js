/*
 * The thank-you page (/contribute/thank-you?contribution=ctb_…).
 *
 * Polls GET /api/v1/contributions/{id} every second until the payment settles (webhooks move
 * the status, usually within a few seconds). Once the response carries a supporter token, it
 * is kept in localStorage under "donations:supporter" so that appeals stop asking this reader.
 *
 * The token comes only to the browser that completed the payment: when /contribute started
 * the contribution, the API set an HttpOnly cookie scoped to this contribution's path along
 * with the client secret, and these same-origin polls send it (credentials: 'same-origin').
 * Anyone else opening this URL sees the status, never a token.
 */
(function () {
  'use strict';

  var config = JSON.parse(document.getElementById('thank-you-config').textContent);
  // The page's words in its language (the server's catalogs); {name} placeholders are ours.
  var STRINGS = JSON.parse(document.getElementById('thank-you-strings').textContent);
  // Stripe's own failure messages are English: other languages get our translated sentence.
  var PROVIDER_WORDS = !config.lang || config.lang === 'en';

  function t(key, values) {
    var text = STRINGS[key] !== undefined ? STRINGS[key] : key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && values[name] !== undefined ? String(values[name]) : whole;
    });
  }
  var STORAGE_KEY = 'donations:supporter';
  var INTERVAL_MS = 1000;
  var SLOW_AFTER_MS = 30000;     // then say it is taking longer than usual…
  var SLOW_INTERVAL_MS = 5000;   // …and ask less often
  var GIVE_UP_AFTER_MS = 600000; // stop polling after ten minutes
  // "failed" is not final: after a declined card the reader may pay the same contribution
  // with another card, and the status reads "failed" until that payment's webhook lands.
  // So a failure is only shown after a grace period, and polling goes on (slowly) after it.
  var FAILED_GRACE_MS = 15000;

  var $ = function (id) { return document.getElementById(id); };
  var el = {
    outcome: $('outcome'),
    title: $('outcome-title'),
    text: $('outcome-text'),
    status: $('outcome-status'),
    actions: $('outcome-actions'),
    retry: $('retry-link'),
  };
  var started = Date.now();
  var lastStatus = null;

  if (!config.contribution) return;

  function majorString(minor, exp) {
    var digits = String(Math.abs(minor));
    if (exp > 0) {
      digits = digits.padStart(exp + 1, '0');
      digits = digits.slice(0, -exp) + '.' + digits.slice(-exp);
    }
    return (minor < 0 ? '-' : '') + digits;
  }

  function formatMoney(minor, code) {
    var exp = config.exponents[code];
    if (exp === undefined) exp = 2;
    try {
      return new Intl.NumberFormat(config.lang || document.documentElement.lang || undefined, {
        style: 'currency', currency: code.toUpperCase(),
        minimumFractionDigits: exp, maximumFractionDigits: exp,
      }).format(majorString(minor, exp));
    } catch (e) {
      return majorString(minor, exp) + ' ' + code.toUpperCase();
    }
  }

  function show(status, title, text, withActions) {
    el.outcome.dataset.status = status;
    el.status.textContent = STRINGS['status_' + status] || status;
    el.title.textContent = title;
    el.text.textContent = text;
    el.actions.hidden = !withActions;
    if (title !== document.title.split(' · ')[0]) {
      document.title = title + ' · ' + STRINGS.title_suffix;
    }
  }

  function retryUrl(c) {
    var q = new URLSearchParams({ amount: String(c.amount), currency: c.currency, frequency: c.frequency });
    if (config.lang) q.set('lang', config.lang);
    if (config.return_url) q.set('url', config.return_url);
    return config.contribute + '?' + q.toString();
  }

  function storeSupporter(token) {
    try {
      window.localStorage.setItem(STORAGE_KEY, token);
    } catch (e) {
      // Private mode or storage disabled: the reader may see appeals again; nothing else breaks.
    }
  }

  function render(c) {
    var total = formatMoney(c.total, c.currency);
    switch (c.status) {
      case 'pending':
        if (Date.now() - started > SLOW_AFTER_MS) {
          show('pending', t('slow_title'), t('slow_text'), false);
        } else {
          show('pending', t('processing_title'), t('processing_text'), false);
        }
        return false;
      case 'succeeded':
      case 'partially_refunded': {
        var parts = [t('thanks_' + (c.frequency === 'monthly' || c.frequency === 'annual'
          ? c.frequency : 'one_off'), { total: total })];
        if (c.fee_covered) parts.push(t('thanks_fee', { fee: formatMoney(c.fee_covered, c.currency) }));
        parts.push(t('receipt_coming'));
        show('succeeded', t('thanks_title'), parts.join(' '), false);
        return true;
      }
      case 'failed':
        if (Date.now() - started < FAILED_GRACE_MS) {
          show('pending', t('processing_title'), t('processing_text'), false);
          return false;
        }
        el.retry.href = retryUrl(c);
        el.retry.textContent = t('try_again');
        show('failed', t('failed_title'), t('failed_text', {
          reason: (PROVIDER_WORDS && c.failure_message) || t('declined'),
        }), true);
        return false;  // keep checking: a later attempt on this contribution may still succeed
      case 'canceled':
        el.retry.href = retryUrl(c);
        el.retry.textContent = t('start_again');
        show('canceled', t('canceled_title'), t('canceled_text'), true);
        return true;
      default:  // refunded, disputed: the payment happened and was later reversed
        show(c.status, STRINGS[c.status + '_title'] || c.status, t('reversed_text'), false);
        return true;
    }
  }

  function schedule() {
    var elapsed = Date.now() - started;
    if (elapsed > GIVE_UP_AFTER_MS) {
      show('pending', t('waiting_title'), t('waiting_text'), false);
      return;
    }
    window.setTimeout(poll, elapsed > SLOW_AFTER_MS ? SLOW_INTERVAL_MS : INTERVAL_MS);
  }

  function poll() {
    fetch(config.api + '/' + encodeURIComponent(config.contribution), {
      headers: { Accept: 'application/json' },
      credentials: 'same-origin',
      cache: 'no-store',
    }).then(function (response) {
      if (response.status === 404) {
        show('unknown', t('not_found_title'), t('not_found_text'), true);
        return;
      }
      if (!response.ok) throw new Error('HTTP ' + response.status);
      return response.json().then(function (data) {
        var c = data.contribution;
        var settled = render(c);
        lastStatus = c.status;
        if (data.supporter_token) {
          storeSupporter(data.supporter_token);
          return;  // done: the reader is a supporter now
        }
        if (!settled || c.status === 'succeeded') schedule();
      });
    }).catch(function () {
      // A network blip or a transient server error: keep trying on the same schedule.
      if (lastStatus === null && Date.now() - started > SLOW_AFTER_MS) {
        show('pending', t('slow_title'), t('trouble_text'), false);
      }
      schedule();
    });
  }

  poll();
})();
