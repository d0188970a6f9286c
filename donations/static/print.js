/* The "Print" links of receipts and statements (a file: the pages' CSP allows no inline handlers). */
document.querySelectorAll('[data-print]').forEach(function (el) {
  el.addEventListener('click', function (e) { e.preventDefault(); window.print(); });
});
