/* auditor report: optional enhancements. The report is complete without this script; it only
   filters (status, severity, target, control, text), expands and collapses. It reads data-*
   attributes and text content, and never writes markup. */
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form || !document.querySelectorAll) { return; }
  form.hidden = false;

  var checks = Array.prototype.slice.call(document.querySelectorAll(".check"));
  var controls = Array.prototype.slice.call(document.querySelectorAll("article.control"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("#controls .section"));
  var nothing = document.getElementById("nothing-shown");
  var texts = new Map();

  function textOf(element) {
    var text = texts.get(element);
    if (text === undefined) {
      text = element.textContent.toLowerCase();
      texts.set(element, text);
    }
    return text;
  }

  function checked(name) {
    var values = {};
    Array.prototype.forEach.call(form.elements[name], function (box) {
      if (box.checked) { values[box.value] = true; }
    });
    return values;
  }

  function apply() {
    var statuses = checked("status");
    var severities = checked("severity");
    var target = form.elements.target.value;
    var control = form.elements.control.value;
    var query = form.elements.q.value.trim().toLowerCase();
    var shown = 0;

    checks.forEach(function (check) {
      var visible = severities[check.dataset.severity] === true &&
        (!control || check.dataset.control === control);
      var summary = check.querySelector("summary");
      var headerMatches = !query || textOf(summary).indexOf(query) >= 0;
      var rows = Array.prototype.slice.call(check.querySelectorAll(".row"));
      var anyRow = false;
      rows.forEach(function (row) {
        var keys = (row.dataset.targets || "").split(" ");
        var ok = visible && statuses[row.dataset.status] === true &&
          (!target || keys.indexOf(target) >= 0) &&
          (headerMatches || textOf(row).indexOf(query) >= 0);
        row.hidden = !ok;
        anyRow = anyRow || ok;
      });
      if (rows.length === 0) {
        // a check without results (not assessed) shows only while no status or target filter is set
        anyRow = visible && !target && headerMatches && Object.keys(statuses).length === 6;
      }
      check.hidden = !anyRow;
      if (anyRow) { shown += 1; }
    });
    var filtering = control !== "" || query !== "" || target !== "" ||
      Object.keys(statuses).length < 6 || Object.keys(severities).length < 5;
    controls.forEach(function (article) {
      article.hidden = article.querySelector(".check") ?
        !article.querySelector(".check:not([hidden])") : filtering;
    });
    sections.forEach(function (section) {
      section.hidden = section.querySelector("article.control") ?
        !section.querySelector("article.control:not([hidden])") : filtering;
    });
    form.elements.shown.value = shown + " of " + checks.length + " checks shown";
    if (nothing) { nothing.hidden = shown > 0; }
  }

  function setOpen(open) {
    Array.prototype.forEach.call(document.querySelectorAll("#controls details"), function (d) {
      d.open = open;
    });
  }

  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  form.addEventListener("click", function (event) {
    var action = event.target && event.target.getAttribute("data-action");
    if (action === "expand") { setOpen(true); }
    if (action === "collapse") { setOpen(false); }
    if (action === "reset") {
      form.reset();
      apply();
    }
  });
  // When a link points into a closed check or fact, open it and scroll to it.
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    var element = id ? document.getElementById(id) : null;
    if (!element) { return; }
    for (var node = element; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") { node.open = true; }
      if (node.hidden) { node.hidden = false; }
    }
    element.scrollIntoView();
  }
  window.addEventListener("hashchange", reveal);
  apply();
  reveal();
}());
