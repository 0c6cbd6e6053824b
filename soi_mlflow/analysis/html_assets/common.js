"use strict";
/* Shared by the soi-mlflow pages. Every value from the data is shown with textContent
   or set as an attribute value: never parsed as markup. */
const SOI = (function () {
  const data = JSON.parse(document.getElementById("soi-data").textContent);
  const root = document.getElementById("soi-root");
  const SVGNS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmt(n) { return Number(n).toLocaleString("en-US"); }
  function cat(name, i) {
    const code = (data.cols[name] || [])[i];
    return code === undefined || code < 0 ? null : data.cats[name][code];
  }
  /* The fields describing example i, in reading order: [label, value] pairs. */
  function describe(i, extra) {
    const c = data.cols;
    const rows = [["example_id", c.id[i]], ["member", cat("member", i)]];
    if (c.label) rows.push(["gold label", cat("label", i)]);
    for (const r of extra || []) rows.push(r);
    if (c.planted) rows.push(["planted kind", cat("planted", i)]);
    if (c.text) rows.push(["text", c.text[i]]);
    if (c.text_pair && c.text_pair[i] !== null) rows.push(["pair", c.text_pair[i]]);
    return rows.filter(r => r[1] !== null && r[1] !== undefined);
  }
  function fields(rows) {
    const dl = el("dl");
    for (const [k, v] of rows) { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); }
    return dl;
  }
  return { data, root, el, svg, fmt, cat, describe, fields, PALETTE };
})();
