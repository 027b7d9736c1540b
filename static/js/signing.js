// Validator health (templates/ledger/_validator_rows.html): each validator's strip of marks, one
// per block, oldest on the left, drawn from the compact data the row carries (data-heights as
// "first-last" runs, data-signed one 1/0 per block, data-proposers comma-separated), so that the
// table the console re-reads every few seconds stays small. The marks differ by height and fill
// as well as colour (static/css/site.css); the words beside the strip say the same for screen
// readers, which do not see the strip (aria-hidden).
(function () {
  "use strict";

  function heights(runs) {
    var found = [];
    runs.split(",").forEach(function (run) {
      var ends = run.split("-");
      for (var h = parseInt(ends[0], 10); h <= parseInt(ends[1], 10); h += 1) { found.push(h); }
    });
    return found;
  }

  function draw(strip) {
    if (strip.dataset.drawn === "yes" || !strip.dataset.heights) { return; }
    var validator = strip.dataset.validator;
    var signed = strip.dataset.signed;
    var proposers = strip.dataset.proposers.split(",");
    heights(strip.dataset.heights).forEach(function (height, i) {
      var mark = document.createElement("span");
      var yes = signed.charAt(i) === "1";
      mark.className = "mark";
      mark.dataset.signed = yes ? "yes" : "no";
      if (proposers[i] === validator) { mark.dataset.proposed = ""; }
      mark.title = "block " + height + ": " + (yes ? "signed" : "not in the certificate") +
        "; proposed by validator " + proposers[i];
      strip.appendChild(mark);
    });
    strip.dataset.drawn = "yes";
  }

  function drawAll() { document.querySelectorAll(".signing-strip").forEach(draw); }

  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);
})();
