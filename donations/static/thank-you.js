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
      return new Intl.NumberFormat(document.documentElement.lang || undefined, {
        style: 'currency', currency: code.toUpperCase(),
        minimumFractionDigits: exp, maximumFractionDigits: exp,
      }).format(majorString(minor, exp));
    } catch (e) {
      return majorString(minor, exp) + ' ' + code.toUpperCase();
    }
  }

  var STATUS_WORDS = {
    pending: 'processing', succeeded: 'payment succeeded', failed: 'payment failed',
    canceled: 'canceled', refunded: 'refunded', partially_refunded: 'partially refunded',
    disputed: 'disputed', unknown: 'not found',
  };

  function show(status, title, text, withActions) {
    el.outcome.dataset.status = status;
    el.status.textContent = STATUS_WORDS[status] || status;
    el.title.textContent = title;
    el.text.textContent = text;
    el.actions.hidden = !withActions;
    if (title !== document.title.split(' · ')[0]) {
      document.title = title + ' · Support independent journalism';
    }
  }

  function retryUrl(c) {
    var q = new URLSearchParams({ amount: String(c.amount), currency: c.currency, frequency: c.frequency });
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
          show('pending', 'Still processing your payment…',
               'This is taking longer than usual. You can safely close this page: you will ' +
               'receive an email receipt as soon as your payment is confirmed.', false);
        } else {
          show('pending', 'Processing your payment…',
               'This usually takes a few seconds. Please keep this page open.', false);
        }
        return false;
      case 'succeeded':
      case 'partially_refunded': {
        var text;
        if (c.frequency === 'monthly' || c.frequency === 'annual') {
          text = 'Your ' + (c.frequency === 'monthly' ? 'monthly' : 'annual') + ' contribution of ' +
            total + ' is set up, and the first payment has been received. ';
        } else {
          text = 'We have received your contribution of ' + total + '. ';
        }
        if (c.fee_covered) {
          text += 'Thank you for also covering the ' + formatMoney(c.fee_covered, c.currency) +
            ' processing fee. ';
        }
        text += 'A receipt is on its way to your inbox.';
        show('succeeded', 'Thank you for supporting independent journalism', text, false);
        return true;
      }
      case 'failed':
        if (Date.now() - started < FAILED_GRACE_MS) {
          show('pending', 'Processing your payment…',
               'This usually takes a few seconds. Please keep this page open.', false);
          return false;
        }
        el.retry.href = retryUrl(c);
        el.retry.textContent = 'Try again';
        show('failed', 'Your payment did not go through',
             (c.failure_message || 'Your card was declined.') +
             ' You have not been charged. Please try again, perhaps with another card.', true);
        return false;  // keep checking: a later attempt on this contribution may still succeed
      case 'canceled':
        el.retry.href = retryUrl(c);
        el.retry.textContent = 'Start again';
        show('canceled', 'This contribution was canceled',
             'You have not been charged. You are welcome to start again.', true);
        return true;
      default:  // refunded, disputed: the payment happened and was later reversed
        show(c.status, 'This contribution was ' + c.status,
             'If you have questions about it, please reply to your receipt email.', false);
        return true;
    }
  }

  function schedule() {
    var elapsed = Date.now() - started;
    if (elapsed > GIVE_UP_AFTER_MS) {
      show('pending', 'We are still waiting for confirmation',
           'Your payment has not been confirmed yet. You will receive an email receipt once it ' +
           'is; there is no need to pay again. You can reload this page later to check.', false);
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
        show('unknown', 'We could not find this contribution',
             'The link may be incomplete. If you were charged, you will receive an email receipt.', true);
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
        show('pending', 'Still processing your payment…',
             'We are having trouble checking the status of your payment. You will receive an ' +
             'email receipt as soon as it is confirmed.', false);
      }
      schedule();
    });
  }

  poll();
})();
