// htmx swaps no 4xx/5xx response, so a boosted link or form ending on an error page (a 404
// after logging in to a workspace one is not a member of, a form re-rendered with 400)
// would leave the old page in place. Show it, as a plain navigation would.
// A file, not an inline script: the Content-Security-Policy runs scripts from our origin only.
document.addEventListener("htmx:beforeSwap", (event) => {
  if (event.detail.boosted && event.detail.xhr.status >= 400) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
