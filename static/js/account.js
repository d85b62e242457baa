// Account pages must never come back from the browser's back/forward cache:
// after a sign-out they would show data the session no longer grants. When a
// page is restored from that cache, reload it so that the server decides
// again (and sends a signed-out visitor to the login page).
window.addEventListener('pageshow', function (event) {
  if (event.persisted) {
    window.location.reload();
  }
});
