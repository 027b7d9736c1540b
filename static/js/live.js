// Live regions: an element with data-live-socket="/ws/..." and data-live-target="#id" keeps a
// WebSocket open. A push is only a hint: whenever the socket opens (first or again) the target
// is re-fetched (htmx trigger "live:refresh"), so a message lost while disconnected only delays
// an update. The status line says in words whether the page is live, so the state does not rely
// on colour.
//
// Two kinds of region:
// * whole (the default): every message re-fetches the target;
// * targeted (data-live-targeted): the region's elements that show one account or one slot carry
//   data-live-topic="account.<address>" or "slot.<ms>" (space-separated, several). The page
//   subscribes to those topics ({"subscribe": [...]}, again after every swap that changes them)
//   and, on a "ledger.changed" hint for a topic, re-fetches only those elements (htmx trigger
//   "live:row"); figures of the whole community (data-live-each-block) follow each block hint.
//   What the page receives per block is bounded by what it shows, not by the community's size.
(function () {
  "use strict";

  function trigger(element, name) {
    if (element && window.htmx) { window.htmx.trigger(element, name); }
  }

  function connect(region) {
    var target = document.querySelector(region.dataset.liveTarget);
    var status = region.querySelector("[data-live-status]");
    var targeted = region.hasAttribute("data-live-targeted");
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + window.location.host + region.dataset.liveSocket;
    var delay = 500;
    var socket = null;
    var subscribed = "";
    var caughtUp = false;

    function say(state, text) {
      region.dataset.liveState = state;
      if (status) { status.textContent = text; }
    }

    function topics() {
      var found = {};
      region.querySelectorAll("[data-live-topic]").forEach(function (element) {
        element.dataset.liveTopic.split(" ").forEach(function (topic) {
          if (topic) { found[topic] = true; }
        });
      });
      return Object.keys(found).sort();
    }

    function subscribe(force) {
      if (!targeted || !socket || socket.readyState !== WebSocket.OPEN) { return; }
      var wanted = topics();
      var key = wanted.join(" ");
      if (key === subscribed && force !== true) { return; }
      subscribed = key;
      socket.send(JSON.stringify({ subscribe: wanted }));
    }

    function changed(topic) {
      region.querySelectorAll("[data-live-topic]").forEach(function (element) {
        if (element.dataset.liveTopic.split(" ").indexOf(topic) !== -1) {
          trigger(element, "live:row");
        }
      });
    }

    function everyBlock() {
      region.querySelectorAll("[data-live-each-block]").forEach(function (element) {
        trigger(element, "live:block");
      });
    }

    function onMessage(event) {
      var message = {};
      try { message = JSON.parse(event.data); } catch (error) { return; }
      if (!targeted) {
        trigger(target, "live:refresh");
      } else if (message.type === "subscribed" && !caughtUp) {
        // The first subscription on this socket is in place: re-read what the page shows, so
        // a block committed before it (since the page was rendered) is not missed.
        caughtUp = true;
        trigger(target, "live:refresh");
        everyBlock();
      } else if (message.type === "ledger.changed") {
        changed(message.topic);
      } else if (message.type === "ledger.block") {
        if (message.everything) { trigger(target, "live:refresh"); }
        everyBlock();
      }
    }

    function open() {
      socket = new WebSocket(url);
      subscribed = "";
      caughtUp = false;
      socket.onopen = function () {
        say("live", "Live: updates appear as they happen.");
        delay = 500;
        if (targeted) {
          subscribe(true);  // re-read once the server has subscribed: see onMessage
          return;
        }
        // Also on the first open: a block committed between rendering the page and opening the
        // socket would otherwise stay unseen until the next one.
        trigger(target, "live:refresh");
      };
      socket.onmessage = onMessage;
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
    if (targeted) {
      // Rows swapped in (a page, a filter, a refreshed row) may show other accounts or slots.
      region.addEventListener("htmx:afterSettle", function () { subscribe(false); });
    }
    open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-socket]").forEach(connect);
  });
})();
