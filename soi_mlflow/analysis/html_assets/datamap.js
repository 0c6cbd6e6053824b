/* The interactive data map: variability (x) against confidence (y), one SVG circle per
   example; colour by SOI or region; filter by member and by subset; hover for details,
   click to pin them. */
(function () {
  const { data, root, el, svg, fmt, cat, describe, fields, PALETTE } = SOI;
  const c = data.cols;
  const n = c.id.length;
  const REGION_COLORS = { easy_to_learn: "#2ca02c", ambiguous: "#ff7f0e",
                          hard_to_learn: "#d62728", unassigned: "#9e9e9e" };
  const epochs = data.epochs ? `, ${data.epochs} epochs` : "";
  root.appendChild(el("p", { class: "note" }, data.shown < data.total
    ? `Showing a uniform random sample of ${fmt(data.shown)} of ${fmt(data.total)} examples ` +
      `(seed ${data.seed})${epochs}; counts in the legend are of all ${fmt(data.total)}.`
    : `All ${fmt(data.total)} examples${epochs}. Hover a point for the example, click to pin.`));

  const state = { colorBy: "soi", hidden: { soi: new Set(), region: new Set() },
                  members: new Set(data.cats.member), find: "" };
  const controls = el("div", { class: "controls" });
  const colorSel = el("select", { id: "soi-color" });
  for (const [v, t] of [["soi", "SOI"], ["region", "cartography region"]]) {
    colorSel.appendChild(el("option", { value: v }, t));
  }
  const colorLabel = el("label", {}, "colour by ");
  colorLabel.appendChild(colorSel);
  controls.appendChild(colorLabel);
  const memberBox = el("span", { id: "soi-members" }, "members: ");
  data.cats.member.forEach((m) => {
    const box = el("input", { type: "checkbox", "data-member": m });
    box.checked = true;
    box.addEventListener("change", () => {
      if (box.checked) state.members.add(m); else state.members.delete(m);
      update();
    });
    const label = el("label");
    label.appendChild(box);
    label.appendChild(document.createTextNode(` ${m} (${fmt(data.counts.member[m] || 0)}) `));
    memberBox.appendChild(label);
  });
  controls.appendChild(memberBox);
  const find = el("input", { type: "search", id: "soi-find", placeholder: "find id or text", size: 24 });
  find.addEventListener("input", () => { state.find = find.value.trim().toLowerCase(); update(); });
  controls.appendChild(find);
  const shownNote = el("span", { id: "soi-shown", class: "note" });
  controls.appendChild(shownNote);
  root.appendChild(controls);
  const legend = el("div", { class: "legend", id: "soi-legend" });
  root.appendChild(legend);

  function color(by, name, k) {
    return by === "region" ? (REGION_COLORS[name] || "#9e9e9e") : PALETTE[k % PALETTE.length];
  }

  // The plot: fixed pixel size, scaled by CSS to the frame.
  const W = 760, H = 540, L = 56, R = 16, T = 14, B = 46;
  const xs = c.x.length ? Math.max(0.5, Math.max(...c.x)) : 0.5;
  const px = (x) => L + (x / xs) * (W - L - R);
  const py = (y) => T + (1 - y) * (H - T - B);
  const plot = svg("svg", { class: "map", id: "soi-map", viewBox: `0 0 ${W} ${H}`, width: W, height: H });
  const axis = svg("g", { class: "axis" });
  axis.appendChild(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B }));
  axis.appendChild(svg("line", { x1: L, y1: T, x2: L, y2: H - B }));
  for (let k = 0; k <= 5; k++) {
    const xv = (xs * k) / 5, yv = k / 5;
    axis.appendChild(svg("line", { x1: px(xv), y1: H - B, x2: px(xv), y2: H - B + 4 }));
    axis.appendChild(svg("text", { x: px(xv), y: H - B + 16, "text-anchor": "middle" }, xv.toFixed(2)));
    axis.appendChild(svg("line", { x1: L - 4, y1: py(yv), x2: L, y2: py(yv) }));
    axis.appendChild(svg("text", { x: L - 7, y: py(yv) + 4, "text-anchor": "end" }, yv.toFixed(1)));
  }
  axis.appendChild(svg("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle" },
    "variability (std of gold-label probability over epochs)"));
  axis.appendChild(svg("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(T + H - B) / 2})` }, "confidence (mean gold-label probability)"));
  plot.appendChild(axis);
  const th = data.thresholds;
  plot.appendChild(svg("line", { class: "thr", x1: px(th.ambiguous_variability), y1: T,
    x2: px(th.ambiguous_variability), y2: H - B }));
  plot.appendChild(svg("line", { class: "thr", x1: L, y1: py(th.easy_confidence),
    x2: W - R, y2: py(th.easy_confidence) }));
  const points = svg("g", { id: "soi-points" });
  const circles = new Array(n);
  for (let i = 0; i < n; i++) {
    const dot = svg("circle", { class: "pt", cx: px(c.x[i]).toFixed(1), cy: py(c.y[i]).toFixed(1),
                                r: 3.5, "data-i": i, "data-id": c.id[i] });
    circles[i] = dot;
    points.appendChild(dot);
  }
  plot.appendChild(points);
  root.appendChild(plot);

  const tip = el("div", { class: "tip", id: "soi-tip", role: "tooltip" });
  tip.style.display = "none";
  document.body.appendChild(tip);
  let pinned = -1;
  function details(i) {
    const extra = [["SOI", cat("soi", i)], ["region", cat("region", i)],
      ["confidence", c.y[i]], ["variability", c.x[i]], ["correctness", c.correctness[i]]];
    if (c.forgetting) extra.push(["forgetting events", c.forgetting[i]]);
    return describe(i, extra);
  }
  function showTip(i, ev) {
    tip.replaceChildren(fields(details(i)));
    tip.style.display = "block";
    const pad = 14, w = tip.offsetWidth, h = tip.offsetHeight;
    const x = ev.clientX + pad + w > window.innerWidth ? ev.clientX - pad - w : ev.clientX + pad;
    const y = ev.clientY + pad + h > window.innerHeight ? ev.clientY - pad - h : ev.clientY + pad;
    tip.style.left = `${Math.max(0, x)}px`;
    tip.style.top = `${Math.max(0, y)}px`;
  }
  points.addEventListener("mouseover", (ev) => {
    const i = Number(ev.target.getAttribute("data-i"));
    if (pinned < 0 && ev.target.classList.contains("pt")) showTip(i, ev);
  });
  points.addEventListener("mouseout", () => { if (pinned < 0) tip.style.display = "none"; });
  plot.addEventListener("click", (ev) => {
    if (ev.target.classList.contains("pt")) {
      pinned = Number(ev.target.getAttribute("data-i"));
      showTip(pinned, ev);
      tip.classList.add("pinned");
    } else {
      pinned = -1;
      tip.classList.remove("pinned");
      tip.style.display = "none";
    }
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { pinned = -1; tip.classList.remove("pinned"); tip.style.display = "none"; }
  });

  function drawLegend() {
    legend.replaceChildren();
    const by = state.colorBy;
    data.cats[by].forEach((name, k) => {
      const total = data.counts[by][name] || 0;
      if (!total) return;
      const b = el("button", { type: "button", "data-class": name });
      if (state.hidden[by].has(name)) b.classList.add("off");
      const sw = el("span", { class: "swatch" });
      sw.style.background = color(by, name, k);
      b.appendChild(sw);
      b.appendChild(document.createTextNode(`${name} (${fmt(total)})`));
      b.addEventListener("click", () => {
        if (state.hidden[by].has(name)) state.hidden[by].delete(name); else state.hidden[by].add(name);
        drawLegend();
        update();
      });
      legend.appendChild(b);
    });
  }
  function matches(i) {
    if (!state.find) return true;
    const text = `${c.id[i]} ${c.text ? c.text[i] || "" : ""} ${c.text_pair ? c.text_pair[i] || "" : ""}`;
    return text.toLowerCase().includes(state.find);
  }
  function update() {
    const by = state.colorBy;
    let visible = 0;
    for (let i = 0; i < n; i++) {
      const k = c[by][i];
      const name = data.cats[by][k];
      circles[i].setAttribute("fill", color(by, name, k));
      const on = state.members.has(cat("member", i)) && !state.hidden[by].has(name) && matches(i);
      circles[i].style.display = on ? "" : "none";
      circles[i].classList.toggle("hit", Boolean(state.find) && on);
      visible += on;
    }
    shownNote.textContent = `${fmt(visible)} points shown`;
  }
  colorSel.addEventListener("change", () => { state.colorBy = colorSel.value; drawLegend(); update(); });
  drawLegend();
  update();
})();
