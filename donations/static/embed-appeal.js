/* /embed/appeal (templates/embed_appeal.html): a file, so the page's CSP needs no inline script. */
/* Counts the impression, the view and a click (the hosting page keeps the reader's state). */
(function () {
  var data = document.getElementById('appeal-event');
  var url = data.getAttribute('data-events-url');
  var base = JSON.parse(data.textContent);
  function send(types) {
    var body = JSON.stringify({ events: types.map(function (t) { return Object.assign({ type: t }, base); }) });
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([body], { type: 'text/plain' }))) return;
    } catch (e) { /* fall back */ }
    fetch(url, { method: 'POST', body: body, keepalive: true, headers: { 'Content-Type': 'text/plain' } })
      .catch(function () {});
  }
  document.querySelectorAll('[data-percent]').forEach(function (el) {
    el.style.width = el.getAttribute('data-percent') + '%';
  });
  send(['impression']);
  var seen = false;
  if ('IntersectionObserver' in window) {
    var io = new IntersectionObserver(function (entries) {
      if (!seen && entries[0].isIntersecting && entries[0].intersectionRatio >= 0.5) {
        seen = true; io.disconnect(); send(['view']);
      }
    }, { threshold: 0.5 });
    io.observe(document.querySelector('.appeal'));
  }
  document.querySelectorAll('[data-track=click]').forEach(function (a) {
    a.addEventListener('click', function () { send(['click']); });
  });
  /* Lets the hosting page size the iframe: {type: "donations:height", height}. */
  function height() {
    try {
      window.parent.postMessage({ type: 'donations:height', height: document.documentElement.scrollHeight }, '*');
    } catch (e) { /* not framed */ }
  }
  window.addEventListener('load', height);
  window.addEventListener('resize', height);
  height();
})();
