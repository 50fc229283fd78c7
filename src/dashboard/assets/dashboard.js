// Headcount dashboard: small progressive enhancements. Everything works
// without this file; it adds a chart tooltip and a copy button.
(function () {
  'use strict';
  document.querySelectorAll('.chartwrap').forEach(function (wrap) {
    var svg = wrap.querySelector('svg');
    var tip = wrap.querySelector('.tip');
    if (!svg || !tip) return;
    svg.querySelectorAll('rect.hit').forEach(function (r) {
      // The native <title> tooltip would show twice.
      var t = r.querySelector('title');
      if (t) t.remove();
      function show() {
        tip.textContent = r.getAttribute('data-label');
        tip.style.left = parseFloat(r.getAttribute('data-x')) + '%';
        tip.hidden = false;
      }
      r.addEventListener('mouseenter', show);
      r.addEventListener('focus', show);
      r.addEventListener('mouseleave', function () { tip.hidden = true; });
    });
  });
  document.querySelectorAll('button[data-copy]').forEach(function (b) {
    var input = document.getElementById(b.getAttribute('data-copy'));
    if (!input || !navigator.clipboard) return;
    b.hidden = false;
    b.addEventListener('click', function () {
      navigator.clipboard.writeText(input.value).then(function () { b.textContent = '✓'; });
    });
  });
  // Close the custom-range popover when clicking elsewhere.
  document.addEventListener('click', function (e) {
    document.querySelectorAll('details.custom[open], details.help[open]').forEach(function (d) {
      if (!d.contains(e.target)) d.open = false;
    });
  });
})();
