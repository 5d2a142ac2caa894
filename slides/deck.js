(function () {
  var slides = Array.prototype.slice.call(document.querySelectorAll('section.slide'));
  var deck = document.getElementById('deck'), notes = document.getElementById('notes');
  var current = 0;
  function fit() {
    var room = window.innerHeight - (document.body.classList.contains('show-notes') ? notes.offsetHeight : 0);
    var scale = Math.min(window.innerWidth / 1280, room / 720);
    deck.style.transform = 'scale(' + scale + ')';
    deck.style.left = Math.max(0, (window.innerWidth - 1280 * scale) / 2) + 'px';
  }
  function show(n) {
    current = Math.max(0, Math.min(slides.length - 1, n));
    slides.forEach(function (s, k) { s.classList.toggle('current', k === current); });
    var s = slides[current], aside = s.querySelector('aside.notes');
    notes.innerHTML = '<div class="clock">slide ' + (current + 1) + ' / ' + slides.length + ' \u00b7 planned minute ' +
      s.dataset.start + ' of ' + s.dataset.total + '</div>' + (aside ? aside.innerHTML : '');
    if (location.hash !== '#' + (current + 1)) history.replaceState(null, '', '#' + (current + 1));
    fit();
  }
  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (['ArrowRight', 'ArrowDown', 'PageDown', ' ', 'Enter'].indexOf(e.key) >= 0) { show(current + 1); e.preventDefault(); }
    else if (['ArrowLeft', 'ArrowUp', 'PageUp', 'Backspace'].indexOf(e.key) >= 0) { show(current - 1); e.preventDefault(); }
    else if (e.key === 'Home') show(0);
    else if (e.key === 'End') show(slides.length - 1);
    else if (e.key === 'n' || e.key === 'N') { document.body.classList.toggle('show-notes'); fit(); }
  });
  deck.addEventListener('click', function (e) {
    if (window.getSelection && String(window.getSelection())) return;
    show(e.clientX < window.innerWidth / 3 ? current - 1 : current + 1);
  });
  window.addEventListener('resize', fit);
  window.addEventListener('hashchange', function () { show(parseInt(location.hash.slice(1), 10) - 1 || 0); });
  show(parseInt(location.hash.slice(1), 10) - 1 || 0);
})();
