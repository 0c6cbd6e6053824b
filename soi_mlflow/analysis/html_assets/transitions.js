/* The interactive transition heatmap: rows SOI in A, columns SOI in B, counts or row
   fractions; clicking a cell lists its examples. */
(function () {
  const { data, root, el, fmt, cat, describe } = SOI;
  const c = data.cols;
  const S = data.subsets, k = S.length, counts = data.counts;
  const rowSums = counts.map((r) => r.reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...counts.flat());
  let note = `${fmt(data.matched)} examples matched by example_id`;
  if (data.only_a || data.only_b) {
    note += ` (${fmt(data.only_a)} only in ${data.label_a}, ${fmt(data.only_b)} only in ${data.label_b})`;
  }
  note += ". Click a cell to list its examples.";
  if (data.note) note += ` ${data.note}`;
  root.appendChild(el("p", { class: "note" }, note));
  const controls = el("div", { class: "controls" });
  const mode = el("select", { id: "soi-mode" });
  mode.appendChild(el("option", { value: "counts" }, "counts"));
  mode.appendChild(el("option", { value: "rows" }, "fraction of each row"));
  const modeLabel = el("label", {}, "show ");
  modeLabel.appendChild(mode);
  controls.appendChild(modeLabel);
  root.appendChild(controls);

  const table = el("table", { class: "grid", id: "soi-grid" });
  const head = el("tr");
  head.appendChild(el("th", {}, `SOI in ${data.label_a} \u2193 / in ${data.label_b} \u2192`));
  S.forEach((s) => head.appendChild(el("th", {}, s)));
  head.appendChild(el("th", {}, "total"));
  table.appendChild(head);
  const cells = [];
  S.forEach((sa, a) => {
    const tr = el("tr");
    tr.appendChild(el("th", {}, sa));
    S.forEach((sb, b) => {
      const td = el("td", { class: "cell", "data-a": sa, "data-b": sb });
      td.addEventListener("click", () => select(a, b, td));
      cells.push([td, a, b]);
      tr.appendChild(td);
    });
    tr.appendChild(el("td", {}, fmt(rowSums[a])));
    table.appendChild(tr);
  });
  root.appendChild(table);
  const listHead = el("h2", { id: "soi-list-title" }, "");
  const listNote = el("p", { class: "note" });
  const list = el("table", { class: "list", id: "soi-list" });
  root.appendChild(listHead);
  root.appendChild(listNote);
  root.appendChild(list);

  function paint() {
    const rows = mode.value === "rows";
    for (const [td, a, b] of cells) {
      const v = counts[a][b];
      const f = rows ? (rowSums[a] ? v / rowSums[a] : 0) : v / max;
      td.textContent = rows ? f.toFixed(2) : fmt(v);
      td.style.background = `rgba(31, 119, 180, ${(0.05 + 0.9 * f).toFixed(3)})`;
      td.style.color = f > 0.55 ? "#fff" : "#000";
    }
  }
  function select(a, b, td) {
    for (const [other] of cells) other.classList.remove("sel");
    td.classList.add("sel");
    const code = a * k + b, total = counts[a][b];
    const rows = [];
    for (let i = 0; i < c.id.length; i++) if (c.cell[i] === code) rows.push(i);
    listHead.textContent = `${fmt(total)} ${total === 1 ? "example" : "examples"}: ${S[a]} in ${data.label_a} \u2192 ${S[b]} in ${data.label_b}`;
    listNote.textContent = rows.length < total
      ? `Listing a random sample of ${fmt(rows.length)} (seed ${data.seed}).` : "";
    list.replaceChildren();
    if (!rows.length) return;
    const described = rows.map((i) => {
      const extra = [];
      if (c.confidence_a) extra.push([`confidence in ${data.label_a}`, c.confidence_a[i]]);
      if (c.confidence_b) extra.push([`confidence in ${data.label_b}`, c.confidence_b[i]]);
      return new Map(describe(i, extra));
    });
    const names = [];
    for (const m of described) for (const name of m.keys()) if (!names.includes(name)) names.push(name);
    const headRow = el("tr");
    names.forEach((name) => headRow.appendChild(el("th", {}, name)));
    list.appendChild(headRow);
    for (const values of described) {
      const tr = el("tr");
      names.forEach((name) => {
        const v = values.get(name);
        tr.appendChild(el("td", { class: name === "text" || name === "pair" ? "text" : "" }, v ?? ""));
      });
      list.appendChild(tr);
    }
  }
  mode.addEventListener("change", paint);
  paint();
})();
