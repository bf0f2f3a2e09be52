// The attention viewer's drawing code: reads DATA (written by formers/interpret/viewer.py), draws with
// SVG and canvas, fetches nothing. State is (layer, head, token); every control change redraws the
// head view, the image overlay and the modality plot, then marks <body data-state> for tests to wait on.
"use strict";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf", "#393b79", "#637939"];
const MAX_SHOWN = 48;  // tokens per column in the head view: more are unreadable
const SVG_NS = "http://www.w3.org/2000/svg";
const state = { layer: 0, head: -1, token: 0 };  // head -1: the mean of the heads
const $ = (id) => document.getElementById(id);

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

// weights of one layer and head (or their mean), as rows: w[q][k]
function matrix(layer, head) {
  const rows = [];
  const heads = head < 0 ? [...Array(layer.heads).keys()] : [head];
  for (let q = 0; q < layer.tq; q++) {
    const row = new Float32Array(layer.tk);
    for (const h of heads) {
      const base = (h * layer.tq + q) * layer.tk;
      for (let k = 0; k < layer.tk; k++) row[k] += layer.w[base + k] / heads.length;
    }
    rows.push(row);
  }
  return rows;
}

function setupControls() {
  const layerSelect = $("layer");
  DATA.layers.forEach((layer, i) => {
    const option = document.createElement("option");
    option.value = i;
    option.textContent = `${i}: ${layer.name} (${layer.query} \u2192 ${layer.key})`;
    layerSelect.appendChild(option);
  });
  layerSelect.addEventListener("change", () => { state.layer = +layerSelect.value; layerChanged(); });
  $("head").addEventListener("change", () => { state.head = +$("head").value; redraw(); });
  $("token").addEventListener("input", () => { state.token = +$("token").value; redraw(); });
}

function layerChanged() {
  const layer = DATA.layers[state.layer];
  const headSelect = $("head");
  headSelect.innerHTML = "";
  const options = [[-1, "mean of heads"], ...[...Array(layer.heads).keys()].map((h) => [h, `head ${h}`])];
  for (const [value, text] of options) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    headSelect.appendChild(option);
  }
  if (state.head >= layer.heads) state.head = -1;
  headSelect.value = state.head;
  $("layer").value = state.layer;
  $("token").max = layer.tq - 1;
  state.token = Math.min(state.token, layer.tq - 1);
  $("token").value = state.token;
  redraw();
}

function drawHeadView(layer) {
  const view = $("headview");
  view.innerHTML = "";
  const queries = DATA.streams[layer.query].labels;
  const keys = DATA.streams[layer.key].labels;
  const lo = Math.max(0, Math.min(state.token - MAX_SHOWN / 2, layer.tq - MAX_SHOWN));
  const shownQ = [...Array(Math.min(layer.tq, MAX_SHOWN)).keys()].map((i) => i + lo);
  let shownK = [...Array(layer.tk).keys()];
  const chosen = matrix(layer, state.head)[state.token];
  if (layer.tk > MAX_SHOWN) {  // the keys the chosen token attends to most, in their order
    shownK = shownK.sort((a, b) => chosen[b] - chosen[a]).slice(0, MAX_SHOWN).sort((a, b) => a - b);
  }
  $("head-note").textContent = (layer.tq > MAX_SHOWN || layer.tk > MAX_SHOWN)
    ? `showing ${shownQ.length} of ${layer.tq} queries around the chosen token and its ${shownK.length} strongest keys`
    : "lines: attention from each query (left) to each key (right); the chosen token's lines are drawn strongest";
  const rowH = 16, height = Math.max(shownQ.length, shownK.length) * rowH + 10;
  view.setAttribute("width", 460);
  view.setAttribute("height", height);
  const yQ = new Map(shownQ.map((q, i) => [q, 12 + i * rowH]));
  const yK = new Map(shownK.map((k, i) => [k, 12 + i * rowH]));
  const heads = state.head < 0 ? [...Array(layer.heads).keys()] : [state.head];
  for (const h of heads) {
    const w = matrix(layer, h);
    for (const q of shownQ) {
      for (const k of shownK) {
        const weight = w[q][k];
        if (weight < 0.02) continue;
        const strong = q === state.token;
        svg("line", { x1: 150, y1: yQ.get(q) - 4, x2: 310, y2: yK.get(k) - 4, stroke: COLORS[h % COLORS.length],
                      "stroke-width": strong ? 2 : 1, "stroke-opacity": (strong ? 0.9 : 0.15) * weight,
                      class: strong ? "chosen" : "other" }, view);
      }
    }
  }
  for (const q of shownQ) {
    const text = svg("text", { x: 145, y: yQ.get(q), "text-anchor": "end", class: q === state.token ? "selected" : "" },
                     view);
    text.textContent = queries[q];
    text.addEventListener("click", () => { state.token = q; $("token").value = q; redraw(); });
  }
  for (const k of shownK) {
    svg("text", { x: 315, y: yK.get(k) }, view).textContent = keys[k];
  }
}

let picture = null;  // the decoded image, drawn under every overlay

function drawOverlay(layer) {
  const section = $("image-section");
  if (!DATA.image) { section.style.display = "none"; return; }
  const canvas = $("overlay"), ctx = canvas.getContext("2d");
  if (!picture) {
    picture = new Image();
    picture.onload = () => drawOverlay(DATA.layers[state.layer]);
    picture.src = DATA.image.src;
    return;
  }
  if (!picture.complete) return;
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
  const patches = DATA.streams[layer.key].patch;
  if (!patches.some((p) => p >= 0)) {
    ctx.fillStyle = "rgba(255,255,255,0.7)";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    $("image-note").textContent = `the keys of this layer (${layer.key}) are not image patches`;
    canvas.dataset.drawn = `${state.layer}/${state.head}/${state.token}`;
    return;
  }
  const row = matrix(layer, state.head)[state.token];
  let top = 0;
  patches.forEach((p, k) => { if (p >= 0) top = Math.max(top, row[k]); });
  const { rows, cols } = DATA.image;
  const cw = canvas.width / cols, ch = canvas.height / rows;
  ctx.fillStyle = "rgba(0,0,0,0.45)";  // darken, then light up each patch by its weight
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  patches.forEach((p, k) => {
    if (p < 0) return;
    const alpha = top > 0 ? row[k] / top : 0;
    ctx.fillStyle = `rgba(255,40,0,${(0.8 * alpha).toFixed(3)})`;
    ctx.fillRect((p % cols) * cw, Math.floor(p / cols) * ch, cw, ch);
  });
  canvas.dataset.drawn = `${state.layer}/${state.head}/${state.token}`;
  const label = DATA.streams[layer.query].labels[state.token];
  $("image-note").textContent = `where "${label}" looks among the ${rows}\u00d7${cols} patches (brightest = most)`;
}

function drawModality(layer) {
  const plot = $("modality");
  plot.innerHTML = "";
  const rows = DATA.modality.filter((m) => m.query === layer.query);
  if (!rows.length) {
    $("modality-note").textContent = `no modality split for the ${layer.query} stream (it reads one modality)`;
    return;
  }
  const tq = DATA.streams[layer.query].labels.length;
  const left = 40, bottom = 200, width = 360, barW = width / rows.length;
  svg("line", { x1: left, y1: bottom, x2: left + width, y2: bottom, stroke: "#444" }, plot);
  svg("line", { x1: left, y1: bottom, x2: left, y2: 20, stroke: "#444" }, plot);
  for (const [v, label] of [[0, "0"], [0.5, "0.5"], [1, "1"]]) {
    svg("text", { x: left - 6, y: bottom - v * 180 + 4, "text-anchor": "end", "font-size": 10 }, plot).textContent = label;
  }
  rows.forEach((m, i) => {
    const values = [...Array(m.heads).keys()].map((h) => m.share[h * tq + state.token]);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const x = left + i * barW;
    svg("rect", { x: x + barW * 0.15, y: bottom - mean * 180, width: barW * 0.7, height: mean * 180,
                  fill: "#e8702a", class: "bar" }, plot).appendChild(svg("title", {})).textContent =
      `${m.name}: ${(100 * mean).toFixed(1)}% from the image (${m.measure})`;
    values.forEach((v, h) => svg("circle", { cx: x + barW / 2, cy: bottom - v * 180, r: 2.5,
                                              fill: COLORS[h % COLORS.length] }, plot));
    svg("text", { x: x + barW / 2, y: bottom + 14, "text-anchor": "middle", "font-size": 10 }, plot).textContent = i;
  });
  const label = DATA.streams[layer.query].labels[state.token];
  $("modality-note").textContent = `share that "${label}" takes from the image per layer (bars: mean, dots: heads; ` +
    `${rows[0].measure})`;
}

function drawModelView() {
  const grid = $("modelview");
  const most = Math.max(...DATA.layers.map((l) => l.heads));
  grid.style.gridTemplateColumns = `270px repeat(${most}, 60px)`;
  DATA.layers.forEach((layer, i) => {
    const label = document.createElement("div");
    label.className = "row-label";
    label.textContent = `${i}: ${layer.name}`;
    label.title = `${layer.name} (${layer.query} \u2192 ${layer.key})`;
    grid.appendChild(label);
    for (let h = 0; h < most; h++) {
      if (h >= layer.heads) { grid.appendChild(document.createElement("div")); continue; }
      const canvas = document.createElement("canvas");
      canvas.width = layer.tk;
      canvas.height = layer.tq;
      canvas.dataset.layer = i;
      canvas.dataset.head = h;
      const ctx = canvas.getContext("2d"), img = ctx.createImageData(layer.tk, layer.tq);
      const w = matrix(layer, h);
      let top = 0;
      for (const row of w) for (const v of row) top = Math.max(top, v);
      w.forEach((row, q) => row.forEach((v, k) => {
        const shade = 255 - Math.round(255 * (top > 0 ? v / top : 0)), o = 4 * (q * layer.tk + k);
        img.data[o] = shade; img.data[o + 1] = shade; img.data[o + 2] = 255; img.data[o + 3] = 255;
      }));
      ctx.putImageData(img, 0, 0);
      canvas.addEventListener("click", () => { state.layer = i; state.head = h; layerChanged(); });
      canvas.title = `layer ${i}, head ${h}`;
      if (layer.importance) {  // the loss rise when this head is masked, under its map
        const cell = document.createElement("div");
        cell.className = "cell";
        const score = layer.importance[h];
        cell.appendChild(canvas);
        const caption = document.createElement("div");
        caption.className = "importance";
        caption.textContent = `${score >= 0 ? "+" : ""}${score.toFixed(3)}`;
        caption.title = "loss rise when this head is masked";
        caption.style.color = score > 0 ? "#c00" : "#555";
        cell.appendChild(caption);
        grid.appendChild(cell);
      } else {
        grid.appendChild(canvas);
      }
    }
  });
}

function redraw() {
  const layer = DATA.layers[state.layer];
  const label = DATA.streams[layer.query].labels[state.token];
  $("token-label").textContent = `${state.token}: ${label}`;
  drawHeadView(layer);
  drawOverlay(layer);
  drawModality(layer);
  for (const c of document.querySelectorAll("#modelview canvas")) {
    c.classList.toggle("selected", +c.dataset.layer === state.layer && +c.dataset.head === state.head);
  }
  document.body.dataset.state = `${state.layer}/${state.head}/${state.token}`;
}

// A starting state from the address: page.html#layer=4&head=1&token=2 (for links and screenshots).
function fromAddress() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const number = (name, lo, hi, fallback) => {
    const v = Number.parseInt(params.get(name), 10);
    return Number.isInteger(v) && v >= lo && v <= hi ? v : fallback;
  };
  state.layer = number("layer", 0, DATA.layers.length - 1, 0);
  const layer = DATA.layers[state.layer];
  state.head = number("head", -1, layer.heads - 1, -1);
  state.token = number("token", 0, layer.tq - 1, 0);
}

setupControls();
drawModelView();
fromAddress();
layerChanged();
