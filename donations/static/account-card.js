/*
 * The card page (/account/subscriptions/<id>/card): a SetupIntent made by the server for the
 * subscription's customer, confirmed here with Stripe.js's confirmCardSetup; the form then
 * posts the SetupIntent's id and the server makes its card the customer's default.
 */
(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('card-config').textContent);
  var words = config.strings || {};  // the page's words, in its language
  var form = document.getElementById('card-form');
  var errorBox = document.getElementById('card-error');
  var button = document.getElementById('save-card');
  var stripe = null;
  var card = null;

  function fail(message) {
    errorBox.textContent = message;
    button.disabled = false;
  }

  try {
    stripe = window.Stripe(config.publishable_key, config.lang ? { locale: config.lang } : undefined);
    card = stripe.elements().create('card', { hidePostalCode: false });
    card.mount('#card-element');
  } catch (e) {
    fail(words.not_loaded);
    button.disabled = true;
    return;
  }

  form.addEventListener('submit', async function (event) {
    if (document.getElementById('setup-intent').value) return;  // second pass: a normal post
    event.preventDefault();
    button.disabled = true;
    errorBox.textContent = '';
    var secret;
    try {
      var response = await fetch(config.setup_intent_url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': config.csrf_token, Accept: 'application/json' },
      });
      var data = await response.json();
      if (!response.ok || !data.client_secret) throw new Error(data.error || data.detail || 'error');
      secret = data.client_secret;
    } catch (e) {
      fail((e && e.message && e.message !== 'error') ? e.message : words.not_started);
      return;
    }
    var result = await stripe.confirmCardSetup(secret, { payment_method: { card: card } });
    if (!result || result.error || !result.setupIntent) {
      var message = result && result.error && result.error.message;
      fail(message && message !== 'Bad request' ? message : words.not_set_up);
      return;
    }
    document.getElementById('setup-intent').value = result.setupIntent.id;
    form.submit();
  });
})();
