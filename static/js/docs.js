// Starts Swagger UI on the API docs page. "Authorize" uses the OAuth2
// password flow against /token; the token it gets is sent as a bearer
// header with every "Try it out".
window.addEventListener('DOMContentLoaded', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout'
  });
  // When the Authorize dialog opens, put the cursor in its username field.
  new MutationObserver(function () {
    var field = document.getElementById('oauth_username');
    if (field && !field.dataset.focused) {
      field.dataset.focused = '1';
      field.focus();
    }
  }).observe(document.body, {childList: true, subtree: true});
});
