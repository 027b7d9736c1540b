// Folded sections. A <details> opens when the address names it or something inside it, so a
// link to a folded section (the console's section bar, a page of a folded list) shows what it
// points to in every browser, not only in those that unfold on their own.
(function () {
  "use strict";

  function unfold() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var target = id ? document.getElementById(id) : null;
    var opened = false;
    for (var node = target; node; node = node.parentElement) {
      if (node.tagName === "DETAILS" && !node.open) {
        node.open = true;
        opened = true;
      }
    }
    if (opened) { target.scrollIntoView(); }
  }

  // A live region re-fetched (htmx) keeps what the reader unfolded in it: a <details> with an
  // id that was open before the swap is open after it, not shut on every block.
  var wasOpen = [];
  document.addEventListener("htmx:beforeSwap", function (event) {
    wasOpen = [];
    event.detail.target.querySelectorAll("details[id][open]").forEach(function (details) {
      wasOpen.push(details.id);
    });
  });
  document.addEventListener("htmx:afterSwap", function () {
    wasOpen.forEach(function (id) {
      var details = document.getElementById(id);
      if (details) { details.open = true; }
    });
    wasOpen = [];
  });

  document.addEventListener("DOMContentLoaded", unfold);
  window.addEventListener("hashchange", unfold);
})();
