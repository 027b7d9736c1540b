// The registration form's hidden time_zone field: the browser's own IANA zone, so that the
// pages show the new household its own time from the start (it can change it in Settings).
(function () {
  "use strict";
  var field = document.querySelector('input[name="time_zone"]');
  if (!field || field.value) { return; }
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    field.value = "";
  }
})();
