// Passkeys on the pages: sign in with one (the button, and the browser's
// autofill on the username field where it offers passkeys), create an
// account with one, add one on the profile, use one as the second step of
// a sign-in, and confirm an action with one (accounts without a password).
// The server makes each ceremony's options and checks the answer; this
// script carries them between the server's JSON endpoints and the
// browser's WebAuthn API, with the browser's own JSON forms where it has
// them (PublicKeyCredential.parseCreationOptionsFromJSON,
// parseRequestOptionsFromJSON, toJSON) and plain base64url otherwise.
(function () {
  'use strict';

  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : '';

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && navigator.credentials.create && navigator.credentials.get);
  }

  // base64url, as WebAuthn's JSON forms spell binary values.
  function toBuffer(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) { s += '='; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function toBase64url(buf) {
    var bytes = new Uint8Array(buf), s = '';
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function withIDs(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, {id: toBuffer(c.id)}); });
  }

  function creationOptions(json) {
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function') {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {challenge: toBuffer(json.challenge),
      user: Object.assign({}, json.user, {id: toBuffer(json.user.id)}), excludeCredentials: withIDs(json.excludeCredentials)});
  }
  function requestOptions(json) {
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function') {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {challenge: toBuffer(json.challenge), allowCredentials: withIDs(json.allowCredentials)});
  }

  // credentialJSON is the answer as toJSON gives it.
  function credentialJSON(cred) {
    if (typeof cred.toJSON === 'function') {
      return cred.toJSON();
    }
    var r = cred.response;
    var out = {id: cred.id, rawId: toBase64url(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {clientDataJSON: toBase64url(r.clientDataJSON)}};
    if (cred.authenticatorAttachment) { out.authenticatorAttachment = cred.authenticatorAttachment; }
    if (r.attestationObject) {
      out.response.attestationObject = toBase64url(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toBase64url(r.authenticatorData);
      out.response.signature = toBase64url(r.signature);
      out.response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
    }
    return out;
  }

  function detail(data) {
    if (data && typeof data.detail === 'string') { return data.detail; }
    if (data && Array.isArray(data.detail)) {
      return data.detail.map(function (d) { return d.msg; }).join(' ');
    }
    return 'Something went wrong. Try again.';
  }

  // post sends JSON to one of the service's endpoints, with the page's
  // CSRF token, and reads the JSON answer; a refusal is thrown with the
  // server's words.
  function post(path, body) {
    return fetch(path, {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/json', 'X-CSRF-Token': csrf},
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          var e = new Error(detail(data));
          e.name = 'ServerError';
          e.data = data;
          throw e;
        }
        return data;
      });
    });
  }

  // words says what went wrong in a person's terms.
  function words(err) {
    switch (err && err.name) {
    case 'NotAllowedError':
      return 'The passkey request was cancelled or timed out, or no passkey for this site is on this device. Try again, or use another way.';
    case 'AbortError':
      return 'The passkey request was cancelled.';
    case 'InvalidStateError':
      return 'This device already holds a passkey for your account.';
    case 'SecurityError':
      return 'Passkeys do not work at this address. Open the site at its usual address and try again.';
    case 'NotSupportedError':
      return 'This device cannot make a passkey that works here.';
    case 'ServerError':
      return err.message;
    }
    return 'Something went wrong with the passkey. Try again.';
  }

  var unsupported = 'This browser cannot use passkeys. Use your password, or another browser or device.';

  function statusOf(el) {
    var box = el.closest('.passkey-alt, .passkey-add, form');
    return box ? box.querySelector('.passkey-status') : null;
  }
  function say(box, text, failed) {
    if (!box) { return; }
    box.textContent = text;
    box.classList.toggle('failed', !!failed);
  }

  function nextField() {
    var next = document.querySelector('form input[name="next"]');
    return next ? next.value : '';
  }

  // autofill is the pending request of the username field's autofill
  // (conditional mediation); a button aborts it before its own request.
  var autofill = null;

  function signIn(options, mediation, signal) {
    var req = {publicKey: requestOptions(options.publicKey)};
    if (mediation) { req.mediation = mediation; }
    if (signal) { req.signal = signal; }
    return navigator.credentials.get(req);
  }

  var flows = {
    login: function () {
      return post('/passkeys/login/options').then(function (o) { return signIn(o); }).then(function (cred) {
        return post('/passkeys/login', {credential: credentialJSON(cred), next: nextField()});
      });
    },
    second: function () {
      return post('/login/mfa/passkey/options').then(function (o) { return signIn(o); }).then(function (cred) {
        return post('/login/mfa/passkey', {credential: credentialJSON(cred), next: nextField()});
      });
    },
    signup: function () {
      var username = document.getElementById('username'), email = document.getElementById('email');
      return post('/register/passkey/options', {username: username ? username.value : '', email: email ? email.value : ''})
        .then(function (o) { return navigator.credentials.create({publicKey: creationOptions(o.publicKey)}); })
        .then(function (cred) { return post('/register/passkey', {credential: credentialJSON(cred)}); });
    },
    add: function () {
      var name = document.getElementById('passkey-name');
      return post('/users/me/passkeys/options')
        .then(function (o) { return navigator.credentials.create({publicKey: creationOptions(o.publicKey)}); })
        .then(function (cred) {
          return post('/users/me/passkeys', {credential: credentialJSON(cred), name: name ? name.value : ''});
        })
        .then(function () { return {redirect: '/profile?done=passkey_added'}; });
    }
  };

  function run(button) {
    var box = statusOf(button);
    if (!supported()) {
      say(box, unsupported, true);
      return;
    }
    if (autofill) {
      autofill.abort();
      autofill = null;
    }
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    say(box, 'Waiting for your passkey…', false);
    flows[button.getAttribute('data-passkey')]().then(function (done) {
      say(box, 'Done.', false);
      window.location.assign(done.redirect);
    }).catch(function (err) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      if (err && err.data && err.data.redirect) {
        window.location.assign(err.data.redirect);
        return;
      }
      say(box, words(err), true);
    });
  }

  // The username field's autofill offers passkeys where the browser can
  // (conditional mediation); choosing one signs in as the button does.
  function startAutofill() {
    var field = document.querySelector('input[autocomplete~="webauthn"]');
    if (!field || !supported() || typeof PublicKeyCredential.isConditionalMediationAvailable !== 'function') {
      return;
    }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok || autofill) { return; }
      var controller = new AbortController();
      autofill = controller;
      post('/passkeys/login/options').then(function (o) {
        return signIn(o, 'conditional', controller.signal);
      }).then(function (cred) {
        return post('/passkeys/login', {credential: credentialJSON(cred), next: nextField()});
      }).then(function (done) {
        window.location.assign(done.redirect);
      }).catch(function (err) {
        if (controller.signal.aborted) { return; }
        autofill = null;
        var button = document.querySelector('[data-passkey="login"]');
        if (button && err && err.name === 'ServerError') { say(statusOf(button), words(err), true); }
      });
    }).catch(function () {});
  }

  // Forms of accounts without a password confirm with a passkey: the
  // answer goes in the form's hidden "passkey" field.
  function confirmForm(form) {
    form.addEventListener('submit', function (event) {
      var field = form.querySelector('input[name="passkey"]');
      if (!field || field.value) { return; }
      event.preventDefault();
      var box = form.querySelector('.passkey-status');
      if (!supported()) {
        say(box, unsupported, true);
        return;
      }
      var button = form.querySelector('button[type="submit"]');
      if (button) { button.disabled = true; }
      say(box, 'Confirm with your passkey…', false);
      post('/users/me/passkeys/confirm/options').then(function (o) { return signIn(o); }).then(function (cred) {
        field.value = JSON.stringify(credentialJSON(cred));
        form.submit();
      }).catch(function (err) {
        if (button) { button.disabled = false; }
        say(box, words(err), true);
      });
    });
  }

  function start() {
    document.querySelectorAll('[data-passkey]').forEach(function (button) {
      button.addEventListener('click', function () { run(button); });
      if (!supported()) { say(statusOf(button), unsupported, true); }
    });
    document.querySelectorAll('form[data-passkey-confirm]').forEach(confirmForm);
    startAutofill();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
