// Small helps for every page, none needed for the page to work:
// - a "Show" button beside each password field (aria-pressed says whether
//   the password is shown);
// - after a refused submit, focus goes to the first field with an error;
// - times written in UTC by the server are shown in the reader's time zone
//   and relative ("5 minutes ago"), with the full time on hover.
(function () {
  'use strict';

  function addToggles() {
    document.querySelectorAll('input[type="password"]').forEach(function (input) {
      var button = document.createElement('button');
      button.type = 'button';
      button.className = 'secondary reveal';
      button.textContent = 'Show';
      button.setAttribute('aria-pressed', 'false');
      button.setAttribute('aria-controls', input.id);
      button.setAttribute('aria-label', 'Show password');
      button.addEventListener('click', function () {
        var shown = input.type === 'password';
        input.type = shown ? 'text' : 'password';
        button.setAttribute('aria-pressed', shown ? 'true' : 'false');
        button.textContent = shown ? 'Hide' : 'Show';
        button.setAttribute('aria-label', shown ? 'Hide password' : 'Show password');
      });
      var wrap = document.createElement('div');
      wrap.className = 'reveal-wrap';
      input.parentNode.insertBefore(wrap, input);
      wrap.appendChild(input);
      wrap.appendChild(button);
    });
  }

  function focusFirstError() {
    var bad = document.querySelector('.field.invalid input');
    if (bad) {
      bad.focus();
    }
  }

  var units = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400], ['hour', 3600], ['minute', 60]];

  function relative(date) {
    var seconds = Math.round((date.getTime() - Date.now()) / 1000);
    var rtf = new Intl.RelativeTimeFormat(undefined, {numeric: 'auto'});
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1]) {
        return rtf.format(Math.round(seconds / units[i][1]), units[i][0]);
      }
    }
    return Math.abs(seconds) < 45 ? (seconds <= 0 ? 'just now' : 'in a moment') : rtf.format(seconds, 'second');
  }

  function localTimes() {
    if (!window.Intl || !Intl.RelativeTimeFormat) {
      return;
    }
    document.querySelectorAll('time[datetime]').forEach(function (el) {
      var date = new Date(el.getAttribute('datetime'));
      if (isNaN(date.getTime())) {
        return;
      }
      el.title = date.toLocaleString(undefined, {dateStyle: 'full', timeStyle: 'short'});
      el.textContent = relative(date);
      el.classList.add('relative');
    });
  }

  // A live hint under each new-password field, with the server's rules:
  // at least 8 characters, at most 72 bytes, not a common password.
  var common = null;
  function loadCommon(then) {
    if (common) { then(); return; }
    fetch('/common-passwords.txt').then(function (r) { return r.ok ? r.text() : ''; }).then(function (text) {
      common = new Set(text.split('\n').map(function (l) { return l.trim().toLowerCase(); }).filter(Boolean));
      then();
    }).catch(function () { common = new Set(); then(); });
  }
  function strength(pw) {
    var chars = Array.from(pw).length;
    var bytes = new TextEncoder().encode(pw).length;
    if (chars === 0) { return ''; }
    if (chars < 8) { return (8 - chars) + ' more character' + (chars === 7 ? '' : 's') + ' needed.'; }
    if (bytes > 72) { return 'Too long: up to 72 characters, fewer with accented letters or emoji.'; }
    if (common && common.has(pw.toLowerCase())) { return 'This is one of the 10,000 most common passwords; choose another.'; }
    return 'Long enough, and not a common password.';
  }
  function addStrengthHints() {
    document.querySelectorAll('input[autocomplete="new-password"]').forEach(function (input) {
      var hint = document.createElement('p');
      hint.className = 'hint strength';
      hint.id = input.id + '-strength';
      hint.setAttribute('aria-live', 'polite');
      var field = input.closest('.field') || input.parentNode;
      field.appendChild(hint);
      var described = input.getAttribute('aria-describedby');
      input.setAttribute('aria-describedby', (described ? described + ' ' : '') + hint.id);
      var update = function () { hint.textContent = strength(input.value); };
      input.addEventListener('input', function () { loadCommon(update); update(); });
    });
  }

  function start() {
    addToggles();
    addStrengthHints();
    focusFirstError();
    localTimes();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
