// amst-bench leaderboard site: sort any table by a column, filter by dataset, method family and
// protocol. Hand-written, no library; the pages read fine without it.
(function () {
  "use strict";

  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) return null;
    if (numeric) {
      var v = cell.getAttribute("data-v");
      return v === null ? null : parseFloat(v);
    }
    return cell.textContent.trim().toLowerCase();
  }

  // Clicking a header sorts the table's measured rows; numbers start high-to-low, text A-Z; a second
  // click reverses. Rows without a value stay last. The paper's rows live in their own <tbody> and
  // are never moved in among the measured ones.
  function makeSortable(table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, index) {
      var button = th.querySelector("button.sort");
      if (!button) return;
      button.addEventListener("click", function () {
        var numeric = th.getAttribute("data-type") === "num";
        var current = th.getAttribute("aria-sort");
        var dir = current ? (current === "descending" ? "ascending" : "descending")
                          : (numeric ? "descending" : "ascending");
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
        var body = table.querySelector("tbody.measured");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
          if (x === null || y === null) return (x === null) - (y === null);
          var order = x < y ? -1 : x > y ? 1 : 0;
          return dir === "ascending" ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  function setupFilters(form) {
    var selects = form.querySelectorAll("select");
    var shown = form.querySelector("#shown");

    function apply() {
      var want = {};
      Array.prototype.forEach.call(selects, function (s) { want[s.name] = s.value; });
      var count = 0;
      document.querySelectorAll("section.board-section").forEach(function (section) {
        var visibleRows = 0;
        section.querySelectorAll("tbody tr").forEach(function (row) {
          var ok = !want.family || row.getAttribute("data-family") === want.family;
          row.hidden = !ok;
          if (ok && row.parentNode.classList.contains("measured")) visibleRows += 1;
        });
        var anyRow = section.querySelector("tbody tr:not([hidden])") !== null;
        var ok = (!want.dataset || section.getAttribute("data-dataset") === want.dataset) &&
                 (!want.protocol || section.getAttribute("data-protocol") === want.protocol) && anyRow;
        section.hidden = !ok;
        if (ok) count += visibleRows;
      });
      document.querySelectorAll("section.protocol").forEach(function (section) {
        section.hidden = section.querySelector("section.board-section:not([hidden])") === null;
      });
      if (shown) shown.textContent = count + " measured row" + (count === 1 ? "" : "s") + " shown";
      var query = Object.keys(want).filter(function (k) { return want[k]; })
        .map(function (k) { return k + "=" + encodeURIComponent(want[k]); }).join("&");
      if (window.history && window.history.replaceState && location.protocol !== "file:") {
        window.history.replaceState(null, "", query ? "?" + query + location.hash : location.pathname + location.hash);
      }
    }

    // A shared link keeps its filter: ?dataset=synthetic&family=alternating
    var params = new URLSearchParams(location.search);
    Array.prototype.forEach.call(selects, function (s) {
      var v = params.get(s.name);
      if (v !== null && Array.prototype.some.call(s.options, function (o) { return o.value === v; })) s.value = v;
      s.addEventListener("change", apply);
    });
    apply();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.board").forEach(makeSortable);
    var form = document.querySelector("form.filters");
    if (form) setupFilters(form);
  });
})();
