// The regulator console's audit log (templates/console/_audit_log.html): when an act commits
// (the "acts" topic's hint, htmx trigger "live:row" from live.js), fetch only the acts of the
// blocks after the one the list was read through (data-audit-through) and put them on top,
// keeping the newest data-audit-shown rows. A block's act then costs its row, not the whole
// log. Every answer names, in its X-Audit-Through header, the height it was read through: the
// next cursor. A reconnect still reads the whole log again (hx-trigger "live:refresh").
(function () {
  "use strict";

  function tidy(body) {
    var seen = {};
    var rows = body.querySelectorAll("tr[data-act]");
    if (rows.length) {
      body.querySelectorAll("tr[data-audit-empty]").forEach(function (row) { row.remove(); });
    }
    var kept = 0;
    var shown = parseInt(body.dataset.auditShown, 10) || 50;
    rows.forEach(function (row) {
      // A row already shown (two reads crossing) is kept once; the oldest go past the limit.
      if (seen[row.dataset.act] || kept >= shown) {
        row.remove();
        return;
      }
      seen[row.dataset.act] = true;
      kept += 1;
    });
  }

  function follow(body) {
    var busy = false;
    var again = false;

    function fetchNew() {
      if (busy) { again = true; return; }
      busy = true;
      var url = body.getAttribute("hx-get") + "?after=" +
        encodeURIComponent(body.dataset.auditThrough);
      window.htmx.ajax("GET", url, { target: body, swap: "afterbegin", source: body })
        .finally(function () {
          busy = false;
          if (again) { again = false; fetchNew(); }
        });
    }

    body.addEventListener("live:row", fetchNew);
    body.addEventListener("htmx:afterRequest", function (event) {
      var xhr = event.detail.xhr;
      var through = xhr && xhr.status === 200 ? xhr.getResponseHeader("X-Audit-Through") : null;
      if (through !== null && /^-?[0-9]+$/.test(through)) { body.dataset.auditThrough = through; }
    });
    body.addEventListener("htmx:afterSettle", function () { tidy(body); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var body = document.getElementById("audit-rows");
    if (body && window.htmx) { follow(body); }
  });
})();
