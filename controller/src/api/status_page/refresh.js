// Refreshes the status page in place: fetches the page again, swaps <main> (server-rendered,
// every string already escaped by the agent), and says when the agent stops answering while
// keeping the last good snapshot on screen. Read-only: it only ever GETs this page.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch || !window.DOMParser) return;
  var every = (Number(live.getAttribute("data-refresh")) || 5) * 1000;
  var lastGood = new Date();
  var refreshes = 0;

  function show(text, cls) {
    live.textContent = text;
    live.className = "live " + cls;
  }
  function hhmmss(d) {
    return d.toTimeString().slice(0, 8);
  }
  show("live · updated " + hhmmss(lastGood), "ok");

  function refresh() {
    // A hidden tab costs the agent nothing; the page catches up when it is shown again.
    if (document.hidden) {
      setTimeout(refresh, every);
      return;
    }
    var started = Date.now();
    fetch(location.pathname, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        var main = fresh.getElementById("content");
        var old = document.getElementById("content");
        if (!main || !old) throw new Error("unexpected answer");
        old.replaceWith(document.adoptNode(main));
        document.title = fresh.title;
        lastGood = new Date();
        refreshes += 1;
        // Lets a test (or a curious reader of the DOM) see that the page refreshed itself.
        live.setAttribute("data-refreshes", String(refreshes));
        show("live · updated " + hhmmss(lastGood), "ok");
      })
      .catch(function (e) {
        show("agent not answering (" + e.message + ") · data from " + hhmmss(lastGood), "stale");
      })
      .then(function () {
        // On a big cluster the page takes a while to build: an open tab then waits ten times
        // as long as the last answer took, so it never keeps the agent more than 10% busy.
        setTimeout(refresh, Math.max(every, (Date.now() - started) * 10));
      });
  }
  setTimeout(refresh, every);
})();
