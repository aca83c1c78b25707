// Live updates without a reload: every element with data-live-url is replaced by a fresh
// server-rendered fragment every two seconds while the tab is visible.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;

  function loginAgain() {
    var here = window.location.pathname + window.location.search;
    window.location.assign("/login?next=" + encodeURIComponent(here));
  }

  function markUpdated(ok) {
    var status = document.querySelector("[data-live-status]");
    if (!status) return;
    status.textContent = ok
      ? "Updates live. Last updated " + new Date().toLocaleTimeString() + "."
      : "Live updates paused: the service did not answer. Retrying.";
  }

  function follow(element) {
    var url = element.getAttribute("data-live-url");
    var last = null;
    var busy = false;
    async function refresh() {
      if (busy || document.hidden) return;
      busy = true;
      try {
        var response = await fetch(url, {
          credentials: "same-origin",
          cache: "no-store",
          headers: { Accept: "text/html" },
        });
        if (response.status === 401) {
          loginAgain();
          return;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        var html = await response.text();
        if (html !== last) {
          element.innerHTML = html;
          last = html;
        }
        markUpdated(true);
      } catch (error) {
        markUpdated(false);
      } finally {
        busy = false;
      }
    }
    window.setInterval(refresh, INTERVAL_MS);
  }

  document.querySelectorAll("[data-live-url]").forEach(follow);
})();
