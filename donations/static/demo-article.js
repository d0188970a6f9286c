/* /demo/article: the demo's reset / opt-out buttons (templates/demo_article.html). */
document.querySelector('.demo').addEventListener('click', function (e) {
  var action = e.target.getAttribute && e.target.getAttribute('data-demo');
  if (!action) return;
  if (action === 'reset') {
    ['donations:state', 'donations:optout', 'donations:supporter'].forEach(function (k) { localStorage.removeItem(k); });
    location.reload();
  } else if (window.donations) {
    action === 'optout' ? window.donations.optOut() : window.donations.optIn();
  }
});
