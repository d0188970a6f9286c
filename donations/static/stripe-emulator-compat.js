/*
 * FOR THE LOCAL STRIPE EMULATOR ONLY (localstripe). Never served with real Stripe.js.
 *
 * The page includes this file only when the service talks to an emulator
 * (Settings.uses_stripe_emulator, template variable `emulator`), right after the emulator's
 * fake Stripe.js. Real Stripe.js is left untouched: with it, this file is not loaded at all.
 *
 * Why: localstripe's fake Stripe.js has an empty `createPaymentMethod` stub, and its
 * POST /v1/payment_methods refuses publishable keys. Its `createToken(cardElement)` does work
 * with the publishable key, and the token's card (`card_…`) is accepted by the server as a
 * payment method. So this wraps the global `Stripe` factory and makes
 * `createPaymentMethod({type: 'card', card: element, billing_details})` (or the older
 * `createPaymentMethod('card', element, data)`) answer `{paymentMethod: {id: 'card_…'}}` or
 * `{error: {message}}`, which is all the checkout page uses. billing_details are not sent to
 * the emulator (its token endpoint does not take them).
 */
(function () {
  'use strict';

  var original = window.Stripe;
  if (typeof original !== 'function' || original.__donationsEmulatorCompat) return;

  function asError(error, fallback) {
    // The emulator answers a bare "Bad request" to an incomplete or invalid card.
    if (error && typeof error === 'object' && error.message && error.message !== 'Bad request') {
      return error;
    }
    if (typeof error === 'string' && error) return { message: error };
    return { message: fallback };
  }

  function wrapped() {
    var instance = original.apply(this, arguments);
    if (!instance || typeof instance.createToken !== 'function') return instance;

    instance.createPaymentMethod = async function (typeOrData, maybeElement) {
      var element = typeof typeOrData === 'string'
        ? maybeElement
        : typeOrData && typeOrData.card;
      var type = typeof typeOrData === 'string' ? typeOrData : typeOrData && typeOrData.type;
      if (type && type !== 'card') {
        return { error: { message: 'The emulator only supports card payment methods.' } };
      }
      if (!element || !element.value || !element.value.card || !element.value.card.number) {
        return { error: { type: 'validation_error', message: 'Please enter your card details.' } };
      }
      try {
        var result = await instance.createToken(element);
        if (result && result.token && result.token.card && result.token.card.id) {
          return { paymentMethod: { id: result.token.card.id, object: 'payment_method', type: 'card',
                                    card: result.token.card } };
        }
        return { error: asError(result && result.error,
                                'Your card details look incomplete or invalid. Please check them.') };
      } catch (err) {
        return { error: asError(err && (err.error || err),
                                'Your card could not be read. Please check the details.') };
      }
    };
    return instance;
  }

  wrapped.__donationsEmulatorCompat = true;
  window.Stripe = wrapped;
})();
