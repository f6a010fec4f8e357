// The console's only script (the CSP allows no inline script): the CSRF header on htmx requests,
// and drag and drop on the pipeline board.
(function () {
  "use strict";
  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrf();
  });

  function say(text, isError) {
    var box = document.getElementById("board-message");
    if (!box) return;
    box.textContent = text;
    box.className = isError ? "message error" : "message notice";
  }

  function putBack(evt) {
    // A refused move: the card returns to where it was.
    var from = evt.from;
    var ref = from.children[evt.oldIndex] || null;
    from.insertBefore(evt.item, ref);
  }

  function words(name, fallback) {
    // The page's language: the board carries the script's words (data-* attributes).
    var board = document.querySelector(".kanban");
    return (board && board.dataset[name]) || fallback;
  }

  function showUnmet(card, unmet) {
    // The requirements that stopped the move, on the card itself (text only: never markup).
    var old = card.querySelector(".unmet");
    if (old) old.remove();
    if (!unmet.length) return;
    var note = document.createElement("p");
    note.className = "unmet";
    note.textContent = words("needsFirst", "Needs first:") + " " + unmet.map(function (u) {
      return u.requirement + " (" + u.stageName + ")";
    }).join(", ");
    card.appendChild(note);
  }

  function refreshBoard() {
    if (window.htmx) {
      // The page's own address: it keeps how many cards a column shows.
      window.htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#board", swap: "innerHTML" });
    }
  }

  function initBoard(root) {
    var board = root.querySelector ? root.querySelector('.kanban[data-drag="on"]') : null;
    if (!board || !window.Sortable) return;
    board.querySelectorAll("ul.cards").forEach(function (list) {
      window.Sortable.create(list, {
        group: "pipeline",
        animation: 120,
        forceFallback: true, // mouse and touch events rather than HTML5 drag: the same in every browser
        onEnd: function (evt) {
          if (evt.from === evt.to) return;
          var body = new URLSearchParams({ stageId: evt.to.dataset.stageId });
          fetch("/app/opportunities/" + evt.item.dataset.id + "/stage", {
            method: "POST",
            headers: { "X-CSRF-Token": csrf(), "Content-Type": "application/x-www-form-urlencoded" },
            body: body,
            credentials: "same-origin",
          })
            .then(function (r) {
              return r.json().then(function (data) { return { ok: r.ok, data: data }; });
            })
            .then(function (result) {
              if (result.ok) {
                refreshBoard(); // the column summaries change with the move
              } else {
                putBack(evt);
                say(result.data.detail || words("refused", "The move was refused."), true);
                showUnmet(evt.item, result.data.unmet || []);
              }
            })
            .catch(function () {
              putBack(evt);
              say(words("noAnswer", "The move could not be saved (no answer from the server)."), true);
            });
        },
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { initBoard(document); });
  document.addEventListener("htmx:afterSettle", function (event) { initBoard(document); });
})();
