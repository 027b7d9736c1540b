// Pickers at any scale: an input with list="<datalist id>" and data-picker="<url>" asks the
// url (?q= what is typed) for the accounts or contracts that match, and fills its datalist
// with them (JSON {"picks": [{"value", "label"}]}, supervision.views). The page renders the
// first picks; without this script the input still takes a typed or pasted id. A slow answer
// that a newer one overtook is dropped, so the list always matches what is in the input.
(function () {
  "use strict";

  var WAIT_MS = 200;

  function fill(list, picks) {
    var options = document.createDocumentFragment();
    picks.forEach(function (pick) {
      var option = document.createElement("option");
      option.value = pick.value;
      option.textContent = pick.label;
      options.appendChild(option);
    });
    list.replaceChildren(options);
  }

  function attach(input) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list || !window.fetch) { return; }
    var timer = null;
    var asked = 0;

    function ask() {
      var mine = ++asked;
      var url = input.dataset.picker + "?q=" + encodeURIComponent(input.value.trim());
      window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (answer) {
          if (mine !== asked || !answer || !Array.isArray(answer.picks)) { return; }
          fill(list, answer.picks);
          list.dataset.pickerFor = input.value.trim();  // what the list now matches (tests)
        })
        .catch(function () { /* offline: the list stays as it was; typing still works */ });
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, WAIT_MS);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[list][data-picker]").forEach(attach);
  });
})();
