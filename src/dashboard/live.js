// flotilla dashboard: follows this page's event stream (Server-Sent Events) and puts
// each reading of the fleet in place, without a reload. The server renders and escapes
// every reading; this script only swaps it in, keeping open what the reader opened.
(function () {
  "use strict";
  var main = document.getElementById("live");
  var status = document.getElementById("connection");
  if (!main || !main.dataset.events || !window.EventSource) {
    return;
  }
  var say = function (text) {
    if (status) {
      status.textContent = text;
    }
  };
  var source = new EventSource(main.dataset.events);
  source.addEventListener("open", function () {
    say("live");
  });
  source.addEventListener("error", function () {
    // EventSource tries again by itself; the page keeps the last reading.
    say("reconnecting: showing the last reading");
  });
  source.addEventListener("reading", function (event) {
    var open = [];
    main.querySelectorAll("details").forEach(function (d, i) {
      if (d.open) {
        open.push(i);
      }
    });
    main.innerHTML = event.data;
    var details = main.querySelectorAll("details");
    open.forEach(function (i) {
      if (details[i]) {
        details[i].open = true;
      }
    });
    document.body.dataset.readings = String(Number(document.body.dataset.readings || "0") + 1);
    say("live");
  });
})();
