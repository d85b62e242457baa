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

  function start() {
    addToggles();
    focusFirstError();
    localTimes();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
