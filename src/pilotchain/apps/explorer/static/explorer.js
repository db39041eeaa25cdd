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

  // The browser's own check of what the page shows (verify.js): ✓, ✗ with the reason, or why not.
  document.querySelectorAll("[data-verify]").forEach(function (section) {
    var verdict = section.querySelector(".verdict"), steps = section.querySelector(".steps");
    function show(result) {
      section.setAttribute("data-state", result.state);
      var head = {
        ok: "✓ Checked in your browser",
        absent: "✓ Checked in your browser, but no certificate was served",
        failed: "✗ Your browser's check failed: " + result.reason,
        unavailable: "Not checked in your browser: " + result.reason + ". The checks above were done by the explorer's server."
      }[result.state];
      verdict.textContent = head;
      steps.textContent = "";
      result.steps.forEach(function (step) {
        var li = document.createElement("li");
        li.className = step.ok ? "ok" : "failed";
        li.textContent = (step.ok ? "✓ " : "✗ ") + step.text;
        steps.appendChild(li);
      });
    }
    var check = section.getAttribute("data-verify").indexOf("/api/proof/tx/") === 0 ? "checkTx" : "checkBlock";
    fetch(section.getAttribute("data-verify"), { headers: { "Accept": "application/json" } })
      .then(function (response) {
        return response.json().then(function (doc) {
          if (!response.ok) { throw new Error(doc.error || ("HTTP " + response.status)); }
          return doc;
        });
      })
      .then(function (doc) { return window.PilotchainVerify[check](doc); })
      .then(show)
      .catch(function (e) { show({ state: "failed", reason: "the proof could not be read: " + e.message, steps: [] }); });
  });

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
