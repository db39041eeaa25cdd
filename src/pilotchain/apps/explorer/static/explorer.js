// pilotchain explorer: times in the reader's own zone, the browser's own proof checks (verify.js),
// the overview kept live; every label from the page's message table (#messages, its language).
"use strict";
(function () {
  function localTimes(root) {
    root.querySelectorAll("time[data-ms]").forEach(function (el) {
      var ms = Number(el.getAttribute("data-ms"));
      if (ms > 0) { el.title = el.textContent; el.textContent = new Date(ms).toLocaleString(); }
    });
  }
  localTimes(document);
  var M = window.PilotchainVerify.message;  // the page's messages, in its language

  // The browser's own check of what the page shows (verify.js): ✓, ✗ with the reason, or why not.
  document.querySelectorAll("[data-verify]").forEach(function (section) {
    var verdict = section.querySelector(".verdict"), steps = section.querySelector(".steps");
    function show(result) {
      section.setAttribute("data-state", result.state);
      var head = M("js." + result.state, { reason: result.reason });
      verdict.textContent = head;
      steps.textContent = "";
      result.steps.forEach(function (step) {
        var li = document.createElement("li");
        li.className = step.ok ? "ok" : "failed";
        li.textContent = (step.ok ? "✓ " : "✗ ") + step.text;
        steps.appendChild(li);
      });
    }
    var kind = section.getAttribute("data-verify").split("/")[3];  // /api/proof/KIND/...
    var check = { tx: "checkTx", block: "checkBlock", state: "checkState" }[kind.split("?")[0]];
    fetch(section.getAttribute("data-verify"), { headers: { "Accept": "application/json" } })
      .then(function (response) {
        return response.json().then(function (doc) {
          if (!response.ok) { throw new Error(doc.error || ("HTTP " + response.status)); }
          return doc;
        });
      })
      .then(function (doc) { return window.PilotchainVerify[check](doc); })
      .then(show)
      .catch(function (e) { show({ state: "failed", reason: M("js.unreadable", { error: e.message }), steps: [] }); });
  });

  // Live: committed blocks over SSE (/api/live), drawn as two small charts; EventSource reconnects
  // by itself when the explorer restarts, and the explorer follows its node again when it returns.
  var live = document.querySelector("[data-live]");
  if (live && window.EventSource) {
    var points = [];
    var POINTS_MAX = 120;
    var state = live.querySelector('[data-field="live"]');
    var setState = function (name, text) { state.setAttribute("data-state", name); state.textContent = text; };
    var draw = function () {
      ["tx_per_s", "latency_ms"].forEach(function (name) {
        var svg = live.querySelector('[data-chart="' + name + '"]');
        var values = points.map(function (p) { return p[name]; }).filter(function (v) { return v !== null && v !== undefined; });
        var latest = live.querySelector('[data-latest="' + name + '"]');
        latest.textContent = values.length ? String(values[values.length - 1]) : "—";
        var top = Math.max.apply(null, values.concat([1]));
        var step = values.length > 1 ? 300 / (values.length - 1) : 0;
        var coords = values.map(function (v, i) { return (i * step).toFixed(1) + "," + (78 - 74 * v / top).toFixed(1); });
        svg.innerHTML = '<text x="2" y="10" class="axis">' + top + '</text>' +
          (coords.length ? '<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="' + coords.join(" ") + '"/>' : "");
        svg.setAttribute("data-points", String(values.length));
      });
    };
    var height = document.querySelector('[data-field="height"]');
    var add = function (p) {
      points.push(p);
      if (points.length > POINTS_MAX) { points.shift(); }
      if (height && p.height > Number(height.textContent)) { height.textContent = String(p.height); }
    };
    var nodeState = function (node) {
      if (node.connected) {
        setState("live", node.height !== undefined ? M("js.live_height", { height: node.height }) : M("js.live"));
        if (height && node.height > Number(height.textContent)) { height.textContent = String(node.height); }
      } else {
        setState("node-down", M("js.node_down", { error: node.error }));
      }
    };
    var source = new EventSource(live.getAttribute("data-live"));
    source.addEventListener("snapshot", function (e) {
      var snapshot = JSON.parse(e.data);
      points = [];
      snapshot.points.forEach(add);
      nodeState(snapshot.node);
      draw();
    });
    source.addEventListener("point", function (e) { add(JSON.parse(e.data)); draw(); });
    source.addEventListener("node", function (e) { nodeState(JSON.parse(e.data)); });
    source.onerror = function () { setState("explorer-down", M("js.explorer_down")); };
  }

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
