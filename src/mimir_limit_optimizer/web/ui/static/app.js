// The UI's only script (no inline scripts: the CSP forbids them). Theme toggle, charts
// (uPlot), live dashboard (Server-Sent Events), the editor's line numbers, the PromQL box.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("mlo-theme"); } catch (e) { saved = null; }
  if (saved === "dark" || saved === "light") { root.setAttribute("data-theme", saved); }

  function css(name) { return getComputedStyle(root).getPropertyValue(name).trim() || "#888"; }
  var palette = ["--accent", "--bad", "--good", "--warn", "--muted"];

  function compact(v) {
    if (v === null || v === undefined) { return ""; }
    var a = Math.abs(v);
    if (a >= 1e9) { return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G"; }
    if (a >= 1e6) { return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M"; }
    if (a >= 1e3) { return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "K"; }
    return String(Math.round(v * 100) / 100);
  }

  function draw(el, s, title) {
    el.textContent = "";
    var names = Object.keys(s.series || {});
    if (!s.x || s.x.length === 0 || names.length === 0) {
      var p = document.createElement("p"); p.className = "hint"; p.textContent = "No data yet."; el.appendChild(p); return;
    }
    var data = [s.x];
    var series = [{}];
    names.forEach(function (name, i) {
      data.push(s.series[name]);
      series.push({ label: name, stroke: css(palette[i % palette.length]), width: name === "limit" ? 2 : 1.5, spanGaps: false,
                    dash: name === "limit" ? [6, 4] : undefined });
    });
    Object.keys(s.marks || {}).forEach(function (name) {
      var v = s.marks[name];
      data.push(s.x.map(function () { return v; }));
      series.push({ label: name, stroke: css("--good"), width: 2, dash: [2, 3] });
    });
    var width = Math.max(260, el.clientWidth || 300);
    var opts = {
      width: width, height: 220, series: series,
      axes: [{ stroke: css("--muted"), grid: { stroke: css("--line") } },
             { stroke: css("--muted"), grid: { stroke: css("--line") }, size: 56, values: function (u, v) { return v.map(compact); } }],
      legend: { live: true }, cursor: { drag: { x: true, y: false } }
    };
    if (s.x.length === 1) {  // one point: an hour either side, not uPlot's multi-year default
      opts.scales = { x: { time: true, range: function () { return [s.x[0] - 3600, s.x[0] + 3600]; } } };
    }
    var plot = new uPlot(opts, data, el);
    el._plot = plot;
  }

  function load(el) {
    var url = el.getAttribute("data-url");
    var name = el.getAttribute("data-name");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (!res.ok) { el.textContent = res.body.detail || "cannot load the chart"; el.className += " error"; return; }
        var s = name ? res.body[name] : res.body;
        if (!s) { el.textContent = "No data yet."; return; }
        draw(el, s, name);
      })
      .catch(function () { el.textContent = "cannot load the chart"; });
  }

  function charts(scope) {
    (scope || document).querySelectorAll(".chart[data-url]").forEach(load);
    var box = (scope || document).querySelector("#metric-charts");
    if (box) {
      fetch(box.getAttribute("data-url"), { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (all) {
        box.textContent = "";
        Object.keys(all).forEach(function (name) {
          var fig = document.createElement("figure");
          var cap = document.createElement("figcaption"); cap.textContent = name + (all[name].unit ? " (" + all[name].unit + ")" : "");
          var el = document.createElement("div"); el.className = "chart"; el.setAttribute("role", "img"); el.setAttribute("aria-label", name);
          fig.appendChild(cap); fig.appendChild(el); box.appendChild(fig); draw(el, all[name], name);
        });
      });
    }
  }

  function gutter() {
    var area = document.getElementById("yaml"); var g = document.getElementById("gutter");
    if (!area || !g) { return; }
    var update = function () {
      var n = area.value.split("\n").length; var out = [];
      for (var i = 1; i <= n; i++) { out.push(i); }
      g.textContent = out.join("\n"); g.scrollTop = area.scrollTop;
    };
    var hl = document.getElementById("highlight");
    var paint = function () {  // YAML colouring by DOM nodes (textContent only: no markup from input)
      if (!hl) { return; }
      hl.textContent = "";
      var bad = {};
      document.querySelectorAll("#problems .goto-line").forEach(function (a) { bad[a.getAttribute("data-line")] = true; });
      area.value.split("\n").forEach(function (line, i) {
        var row = document.createElement("span");
        if (bad[String(i + 1)]) { row.className = "y-error"; }
        var m = line.match(/^(\s*-?\s*)([^#:'"\s][^:#]*?)(:)(\s|$)(.*)$/);
        var add = function (text, cls) { if (!text) { return; } var s = document.createElement("span"); if (cls) { s.className = cls; } s.textContent = text; row.appendChild(s); };
        var rest = line;
        if (m) { add(m[1]); add(m[2], "y-key"); add(m[3] + m[4]); rest = m[5]; }
        var c = rest.search(/(^|\s)#/);
        var value = c >= 0 ? rest.slice(0, c) : rest; var comment = c >= 0 ? rest.slice(c) : "";
        add(value, /^\s*['"]/.test(value) ? "y-string" : /^\s*-?[0-9][0-9_.eE+-]*[a-z]*\s*$/.test(value) ? "y-number" : "");
        add(comment, "y-comment");
        row.appendChild(document.createTextNode("\n"));
        hl.appendChild(row);
      });
      hl.scrollTop = area.scrollTop; hl.scrollLeft = area.scrollLeft;
    };
    area.addEventListener("input", function () { update(); paint(); });
    area.addEventListener("scroll", function () { g.scrollTop = area.scrollTop; if (hl) { hl.scrollTop = area.scrollTop; hl.scrollLeft = area.scrollLeft; } });
    document.body.addEventListener("htmx:afterSwap", function (ev) { if (ev.detail.target && ev.detail.target.id === "problems") { paint(); } });
    update(); paint();
    document.addEventListener("click", function (ev) {
      var a = ev.target.closest ? ev.target.closest(".goto-line") : null;
      if (!a) { return; }
      ev.preventDefault();
      var line = parseInt(a.getAttribute("data-line"), 10); var lines = area.value.split("\n"); var pos = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) { pos += lines[i].length + 1; }
      area.focus(); area.setSelectionRange(pos, pos + (lines[line - 1] || "").length);
    });
  }

  function live() {
    var pageName = document.body.getAttribute("data-page");
    if ((pageName !== "dashboard" && pageName !== "charts") || !window.EventSource) { return; }
    var source = new EventSource("/ui/events");
    source.addEventListener("cycle", function () {
      if (pageName === "charts") { charts(); } else { document.body.dispatchEvent(new Event("cycle")); }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function promql() {
    var form = document.getElementById("promql-form"); if (!form) { return; }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var out = document.getElementById("query-result");
      var q = new URLSearchParams(new FormData(form)).toString();
      fetch("/api/v1/query?" + q, { credentials: "same-origin" }).then(function (r) {
        return r.json().then(function (b) { return { ok: r.ok, body: b }; });
      }).then(function (res) {
        out.textContent = "";
        if (!res.ok) { var p = document.createElement("p"); p.className = "error"; p.setAttribute("role", "alert"); p.textContent = res.body.detail; out.appendChild(p); return; }
        var el = document.createElement("div"); el.className = "chart"; el.setAttribute("role", "img"); el.setAttribute("aria-label", "query result");
        out.appendChild(el); draw(el, res.body, "query");
      });
    });
  }

  function filters() {
    document.querySelectorAll("input[data-filter-table]").forEach(function (input) {
      var table = document.getElementById(input.getAttribute("data-filter-table"));
      input.addEventListener("input", function () {
        var needle = input.value.toLowerCase();
        table.querySelectorAll("tbody tr").forEach(function (tr) { tr.hidden = needle && tr.textContent.toLowerCase().indexOf(needle) < 0; });
      });
    });
  }

  function markCells(target) {  // the limit table: outline the cells the server refused
    if (!target || target.id !== "limit-diff") { return; }
    var form = document.getElementById("limit-form"); if (!form) { return; }
    form.querySelectorAll("input.cell.invalid").forEach(function (el) { el.classList.remove("invalid"); el.removeAttribute("aria-invalid"); });
    target.querySelectorAll("[data-invalid-field]").forEach(function (li) {
      var el = form.elements.namedItem(li.getAttribute("data-invalid-field"));
      if (el && el.classList) { el.classList.add("invalid"); el.setAttribute("aria-invalid", "true"); }
    });
  }

  // A download button inside an htmx form: htmx would take over the submit event, so the form
  // is sent the plain way (form.submit() fires no submit event) to the button's formaction.
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-download]") : null;
    if (!b || !b.form) { return; }
    ev.preventDefault();
    var form = b.form; var action = form.getAttribute("action");
    form.setAttribute("action", b.getAttribute("formaction"));
    HTMLFormElement.prototype.submit.call(form);
    if (action) { form.setAttribute("action", action); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var dark = root.getAttribute("data-theme") ? root.getAttribute("data-theme") === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
        var next = dark ? "light" : "dark";
        root.setAttribute("data-theme", next);
        try { localStorage.setItem("mlo-theme", next); } catch (e) { /* private mode: not remembered */ }
        document.querySelectorAll(".chart").forEach(function (el) { if (el._plot) { el._plot.destroy(); el._plot = null; } });
        charts();
      });
    }
    charts(); gutter(); live(); promql(); filters();
    document.body.addEventListener("htmx:afterSwap", function (ev) { charts(ev.detail.target); markCells(ev.detail.target); });
  });
})();
