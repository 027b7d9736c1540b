// Copy buttons: <button data-copy="ID"> copies the value of the field with that id, and says so
// in the element marked data-copy-status="ID" (a live region). No inline script: the CSP forbids it.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const id = button.dataset.copy;
  const field = document.getElementById(id);
  const status = document.querySelector(`[data-copy-status="${CSS.escape(id)}"]`);
  if (!field) return;
  const say = (text) => { if (status) status.textContent = text; };
  field.focus();
  field.select();
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(
      () => say("Copied."),
      () => say("Select the token and copy it with your keyboard."),
    );
  } else {
    // Over plain HTTP the clipboard API is missing; the selected field can still be copied.
    say(document.execCommand && document.execCommand("copy") ? "Copied." : "Selected: copy it with your keyboard.");
  }
});
