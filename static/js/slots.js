// The market's slot picker (market.forms.SlotPicker): a day-and-hour select and a minute select.
// Without this script every minute is offered and a minute that is not open is refused by the
// server; with it, the minutes of the chosen hour that are not open (before the first open slot,
// after the last) are greyed out, and a chosen minute that is not open moves to the nearest one
// that is. data-first and data-last are the first and last open slots, "YYYY-MM-DDTHH:MM" in the
// same local time as the options, so that comparing the strings compares the times.
(function () {
  "use strict";

  function follow(picker) {
    var hour = picker.querySelector('select[data-slot-part="hour"]');
    var minute = picker.querySelector('select[data-slot-part="minute"]');
    var first = picker.dataset.first;
    var last = picker.dataset.last;
    if (!hour || !minute || !first || !last) { return; }

    function update() {
      var open = [];
      Array.prototype.forEach.call(minute.options, function (option) {
        var start = hour.value + ":" + option.value;
        option.disabled = start < first || start > last;
        if (!option.disabled) { open.push(option); }
      });
      var chosen = minute.options[minute.selectedIndex];
      if (open.length && (!chosen || chosen.disabled)) {
        var later = open.filter(function (option) { return !chosen || option.value > chosen.value; });
        (later.length ? later[0] : open[open.length - 1]).selected = true;
      }
    }
    hour.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-slot-picker]").forEach(follow);
  });
})();
