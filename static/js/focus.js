// A page that comes back with something to read about a form (a refusal, an error, a second
// look before an order goes out) opens there: focus moves to it and it is scrolled into view,
// so the result of an action is where the user is looking, not somewhere down the page.
document.addEventListener("DOMContentLoaded", () => {
  const target =
    document.querySelector("[data-focus-on-load]") ||
    document.querySelector(".has-error input, .has-error select, .has-error textarea");
  if (target) {
    target.focus({ preventScroll: true });
    target.scrollIntoView({ block: "center" });
  }
});
