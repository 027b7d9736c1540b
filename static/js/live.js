// Live regions: an element with data-live-socket="/ws/..." and data-live-target="#id" keeps a
// WebSocket open; every message from the server makes the target re-fetch itself (htmx trigger
// "live:refresh"). A push is only a hint: whenever the socket opens (first or again) the target
// is re-fetched too, so a message lost while disconnected only delays an update. The status line says in words whether
// the page is live, so the state does not rely on colour.
(function () {
  "use strict";

  function connect(region) {
    var target = document.querySelector(region.dataset.liveTarget);
    var status = region.querySelector("[data-live-status]");
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + window.location.host + region.dataset.liveSocket;
    var delay = 500;

    function say(state, text) {
      region.dataset.liveState = state;
      if (status) { status.textContent = text; }
    }

    function refresh() {
      if (target && window.htmx) { window.htmx.trigger(target, "live:refresh"); }
    }

    function open() {
      var socket = new WebSocket(url);
      socket.onopen = function () {
        say("live", "Live: updates appear as they happen.");
        // Also on the first open: a block committed between rendering the page and opening the
        // socket would otherwise stay unseen until the next one.
        refresh();
        delay = 500;
      };
      socket.onmessage = function () { refresh(); };
      socket.onclose = function (event) {
        if (event.code === 4403) {
          say("closed", "Live updates are not available for your account.");
          return;
        }
        say("reconnecting", "Reconnecting… the list may be out of date.");
        window.setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-socket]").forEach(connect);
  });
})();
