// Folded sections: a <details> opens when the address names it or something inside it, so a
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

  document.addEventListener("DOMContentLoaded", unfold);
  window.addEventListener("hashchange", unfold);
})();
