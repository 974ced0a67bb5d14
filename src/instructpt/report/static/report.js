// The report page's script: charts from the embedded plotly JSON, and the sample browser.
// Data is only ever put in the page with textContent (never innerHTML), so no text can become markup.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  // Each chart's height is its minimum: every minimum is set before any chart is drawn, so the grid's
  // rows have their final heights, then each chart takes its whole card (a short chart beside a tall
  // one grows instead of leaving its card half empty) and follows it when the window is resized.
  // The toolbar shows on hover, in the room every figure leaves above its plot area.
  var config = {displaylogo: false, responsive: true, displayModeBar: "hover",
    modeBarButtonsToRemove: ["select2d", "lasso2d"]};
  var plots = data.charts.map(function (chart) {
    var div = document.getElementById(chart.id);
    div.style.minHeight = chart.figure.layout.height + "px";
    return div;
  });
  data.charts.forEach(function (chart, i) {
    var layout = Object.assign({}, chart.figure.layout, {template: data.template, autosize: true});
    delete layout.height;  // from the card: see above
    Plotly.newPlot(plots[i], chart.figure.data, layout, config);
  });
  var samples = data.sample;
  if (!samples.length) return;
  var $ = function (id) { return document.getElementById(id); };
  var el = function (tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  var cutNote = function (n) {
    return n ? "\n\n[... " + n.toLocaleString() + " more characters not shown]" : "";
  };
  var select = $("sample-select");
  samples.forEach(function (s, i) {
    var n = (s.pairs || []).length;
    select.appendChild(el("option", "", (i + 1) + ". " + s.id + " (" + n + (n === 1 ? " pair)" : " pairs)")));
  });
  var current = 0;
  function show(i) {
    current = (i + samples.length) % samples.length;
    var s = samples[current];
    select.selectedIndex = current;
    $("sample-pos").textContent = (current + 1) + " of " + samples.length;
    $("doc-meta").textContent = "id " + s.id + " · chain " + s.chain_id + ", round " + s.round +
      (s.inherits ? " (inherits)" : "") + " · " + (s.generated_tokens || 0) + " tokens generated, finish " +
      s.finish_reason + (s.n_parts > 1 ? " · part " + (s.part + 1) + " of " + s.n_parts : "") +
      (s.source ? " · " + s.source : "");
    $("doc-text").textContent = s.text + cutNote(s.text_cut);
    var list = $("pairs");
    list.replaceChildren();
    $("pair-count").textContent = String((s.pairs || []).length);
    (s.pairs || []).forEach(function (p) {
      var item = el("li");
      var q = el("div", "q");
      q.appendChild(el("span", "kind", p.kind));
      q.appendChild(document.createTextNode(p.instruction));
      item.appendChild(q);
      item.appendChild(el("div", "a", p.response));
      list.appendChild(item);
    });
    if (!s.pairs || !s.pairs.length) {
      list.appendChild(el("li", "meta", "No pairs: templify keeps this document as raw text."));
    }
    var aug = s.augmented, box = $("aug-text");
    box.replaceChildren();
    if (!aug) {
      $("aug-meta").textContent = data.has_templify ? "Not found in the templify output given." :
        "No templify output given (pass the augmented/ folder or the run's workdir).";
      return;
    }
    $("aug-meta").textContent = "text " + aug.id + " · mode " + aug.mode + " · " + aug.n_shots +
      " shot(s), " + aug.n_pairs + " pairs · documents: " + (aug.source_ids || []).join(", ") +
      " · this document highlighted";
    var at = aug.text.indexOf(s.text);
    if (at < 0 || s.text_cut) {
      box.textContent = aug.text + cutNote(aug.text_cut);
    } else {
      box.appendChild(document.createTextNode(aug.text.slice(0, at)));
      box.appendChild(el("mark", "", s.text));
      box.appendChild(document.createTextNode(aug.text.slice(at + s.text.length) + cutNote(aug.text_cut)));
    }
  }
  $("prev").addEventListener("click", function () { show(current - 1); });
  $("next").addEventListener("click", function () { show(current + 1); });
  select.addEventListener("change", function () { show(select.selectedIndex); });
  document.addEventListener("keydown", function (e) {
    if (e.target === select) return;
    if (e.key === "ArrowLeft") show(current - 1);
    if (e.key === "ArrowRight") show(current + 1);
  });
  show(0);
})();
