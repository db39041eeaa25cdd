// pilotchain explorer: times in the reader's own zone, and the overview's numbers kept fresh.
"use strict";
(function () {
  function localTimes(root) {
    root.querySelectorAll("time[data-ms]").forEach(function (el) {
      var ms = Number(el.getAttribute("data-ms"));
      if (ms > 0) { el.title = el.textContent; el.textContent = new Date(ms).toLocaleString(); }
    });
  }
  localTimes(document);
  var overview = document.querySelector("[data-refresh]");
  if (!overview) { return; }
  var url = overview.getAttribute("data-refresh");
  var REFRESH_MS = 5000;
  function refresh() {
    fetch(url, { headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (!status) { return; }
        ["height", "mempool", "peers"].forEach(function (name) {
          var el = overview.querySelector('[data-field="' + name + '"]');
          if (el && status[name] !== undefined) { el.textContent = status[name]; }
        });
      })
      .catch(function () { /* the node is away: keep what is shown, try again later */ });
  }
  setInterval(refresh, REFRESH_MS);
}());
