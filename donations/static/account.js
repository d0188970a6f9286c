/*
 * The account page (/account): keeps the fresh supporter token the server issued in
 * localStorage under the key the widget reads ("donations:supporter", as the thank-you page
 * does), so appeals stop on this browser too.
 */
(function () {
  'use strict';
  var STORAGE_KEY = 'donations:supporter';
  var node = document.getElementById('account-config');
  if (!node) return;
  var config = JSON.parse(node.textContent);
  if (!config.supporter_token) return;
  try {
    window.localStorage.setItem(STORAGE_KEY, config.supporter_token);
  } catch (e) {
    // Private mode or storage disabled: appeals may show again; nothing else breaks.
  }
})();
