// The demo page (index.html): trains the `nano` NFNet in the tab, then classifies drawings.
//
// All the machine learning is in Rust (examples/web/src/demo.rs, on the nfnet library); this
// module only drives it and draws: the training curve on a canvas, a drawing pad, the
// predictions. Training runs one epoch per call; every step's loss comes back through a
// callback (one step late: the loss is read back while the next step runs), and the page
// redraws between steps because each read-back yields to the browser.
//
// URL parameters: ?epochs=10&train=1280&val=200&batch=32 (the embedded dataset's sizes).

import init, { adapter, Demo } from "./pkg/nfnet_web.js";

// The browser's own words for its WebGPU adapter (wgpu's adapter name is empty in a page).
async function describeAdapter() {
  const info = (await navigator.gpu.requestAdapter())?.info;
  const words = info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean) : [];
  return `${words.join(" ") || "unnamed"} (wgpu: ${await adapter()})`;
}

const params = new URLSearchParams(location.search);
const setting = (name, fallback) => Math.max(1, parseInt(params.get(name) || fallback, 10) || fallback);
const config = {
  epochs: setting("epochs", 10),
  train: setting("train", 1280),
  val: setting("val", 200),
  batch: setting("batch", 32),
};

const $ = (id) => document.getElementById(id);
const status = (text, error = false) => {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
};

// What the page knows, also for scripts (a screenshot waits for `epochsDone`).
const state = (window.demoState = {
  losses: [], // training loss per step, in order
  epochs: [], // {step, top1, valLoss, ...} per finished epoch
  epochsDone: 0,
  done: false,
  stepsTotal: 1,
  training: false,
});

// ---- The training curve -------------------------------------------------------------------

const curve = $("curve");
const ctx = curve.getContext("2d");
let redrawQueued = false;

function queueRedraw() {
  if (!redrawQueued) {
    redrawQueued = true;
    requestAnimationFrame(() => {
      redrawQueued = false;
      drawCurve();
    });
  }
}

function drawCurve() {
  const W = curve.width, H = curve.height;
  const m = { l: 46, r: 50, t: 14, b: 32 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const lossMax = Math.max(2.5, Math.ceil(Math.max(0, ...state.losses.filter(Number.isFinite)) * 2) / 2);
  const x = (step) => m.l + (pw * step) / state.stepsTotal;
  const yLoss = (v) => m.t + ph * (1 - Math.min(v, lossMax) / lossMax);
  const yAcc = (v) => m.t + ph * (1 - v);

  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  // Grid and axes: loss on the left, accuracy on the right.
  ctx.strokeStyle = "#eaecf0";
  ctx.fillStyle = "#667085";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 5; i++) {
    const y = m.t + (ph * i) / 5;
    ctx.beginPath();
    ctx.moveTo(m.l, y);
    ctx.lineTo(m.l + pw, y);
    ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(((lossMax * (5 - i)) / 5).toFixed(1), m.l - 6, y + 4);
    ctx.textAlign = "left";
    ctx.fillText(`${(100 * (5 - i)) / 5}%`, m.l + pw + 6, y + 4);
  }
  const perEpoch = state.stepsTotal / config.epochs;
  ctx.textAlign = "center";
  for (let e = 0; e <= config.epochs; e++) {
    ctx.fillText(String(Math.round(e * perEpoch)), x(e * perEpoch), m.t + ph + 16);
  }
  ctx.fillText("step", m.l + pw / 2, H - 2);
  ctx.save();
  ctx.translate(12, m.t + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillStyle = "#2563eb";
  ctx.fillText("training loss", 0, 0);
  ctx.restore();
  ctx.save();
  ctx.translate(W - 8, m.t + ph / 2);
  ctx.rotate(Math.PI / 2);
  ctx.fillStyle = "#d97706";
  ctx.fillText("held-out accuracy", 0, 0);
  ctx.restore();

  // The loss of every step, then its moving average.
  const line = (points, style, width) => {
    if (points.length < 2) return;
    ctx.strokeStyle = style;
    ctx.lineWidth = width;
    ctx.beginPath();
    points.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
    ctx.stroke();
  };
  line(state.losses.map((v, i) => [x(i + 1), yLoss(v)]), "rgba(37, 99, 235, 0.25)", 1);
  let avg = null;
  line(
    state.losses.map((v, i) => {
      avg = avg === null ? v : 0.85 * avg + 0.15 * v;
      return [x(i + 1), yLoss(avg)];
    }),
    "#2563eb",
    2,
  );
  // Held-out accuracy (and loss) after each epoch.
  const acc = state.epochs.map((e) => [x(e.step), yAcc(e.top1)]);
  line([[x(0), yAcc(0.1)], ...acc], "#d97706", 2);
  for (const [px, py] of acc) {
    ctx.fillStyle = "#d97706";
    ctx.beginPath();
    ctx.arc(px, py, 3.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  for (const e of state.epochs) {
    ctx.strokeStyle = "#1e40af";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.arc(x(e.step), yLoss(e.valLoss), 3.5, 0, 2 * Math.PI);
    ctx.stroke();
  }
  // Legend, bottom right: below the accuracy as it rises, right of the loss as it falls.
  const items = [
    ["#2563eb", "training loss", "line"],
    ["#1e40af", "held-out loss", "ring"],
    ["#d97706", "held-out top-1", "dot"],
  ];
  ctx.textAlign = "left";
  items.forEach(([color, label, mark], i) => {
    const lx = m.l + pw - 118, ly = m.t + ph - 40 + 16 * i;
    ctx.strokeStyle = ctx.fillStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    if (mark === "line") {
      ctx.moveTo(lx, ly - 4);
      ctx.lineTo(lx + 14, ly - 4);
      ctx.stroke();
    } else {
      ctx.arc(lx + 7, ly - 4, 3.5, 0, 2 * Math.PI);
      mark === "dot" ? ctx.fill() : ctx.stroke();
    }
    ctx.fillStyle = "#344054";
    ctx.fillText(label, lx + 20, ly);
  });
  if (state.epochs.length) {
    const last = state.epochs[state.epochs.length - 1];
    ctx.fillStyle = "#d97706";
    ctx.textAlign = "right";
    ctx.fillText(`${(100 * last.top1).toFixed(0)}%`, x(last.step) - 6, yAcc(last.top1) - 6);
  }
}

// ---- The drawing pad ----------------------------------------------------------------------

const pad = $("pad");
const pen = pad.getContext("2d", { willReadFrequently: true });

function clearPad() {
  pen.fillStyle = $("paper").value;
  pen.fillRect(0, 0, pad.width, pad.height);
}

// A first drawing, so that there is something to classify: a ring, as a person might draw it.
function sampleDrawing() {
  clearPad();
  pen.strokeStyle = $("pen").value;
  pen.lineWidth = 30;
  pen.beginPath();
  pen.arc(128, 128, 72, 0, 2 * Math.PI);
  pen.stroke();
}

let last = null;
pad.addEventListener("pointerdown", (e) => {
  pad.setPointerCapture(e.pointerId);
  last = [e.offsetX * (pad.width / pad.clientWidth), e.offsetY * (pad.height / pad.clientHeight)];
  stroke(last);
});
pad.addEventListener("pointermove", (e) => {
  if (!last) return;
  stroke([e.offsetX * (pad.width / pad.clientWidth), e.offsetY * (pad.height / pad.clientHeight)]);
});
const endStroke = () => {
  if (last) classifySoon();
  last = null;
};
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function stroke(to) {
  pen.strokeStyle = $("pen").value;
  pen.lineWidth = +$("size").value;
  pen.lineCap = pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(...last);
  pen.lineTo(...to);
  pen.stroke();
  last = to;
}

$("clear").addEventListener("click", () => {
  clearPad();
  classifySoon();
});
$("paper").addEventListener("change", () => {
  clearPad();
  classifySoon();
});

// Dropped image files are drawn onto the pad, squashed to fill it (as the model squashes).
for (const target of [pad, document.body]) {
  target.addEventListener("dragover", (e) => {
    e.preventDefault();
    pad.classList.add("drop");
  });
  target.addEventListener("dragleave", () => pad.classList.remove("drop"));
  target.addEventListener("drop", async (e) => {
    e.preventDefault();
    pad.classList.remove("drop");
    const file = [...e.dataTransfer.files].find((f) => f.type.startsWith("image/"));
    if (!file) return;
    try {
      const bitmap = await createImageBitmap(file);
      clearPad();
      pen.drawImage(bitmap, 0, 0, pad.width, pad.height);
      classifySoon();
    } catch (err) {
      status(`could not read ${file.name}: ${err}`, true);
    }
  });
}

// ---- Predictions --------------------------------------------------------------------------

let demo = null;
let classes = [];
let pending = false;

// Classifies the pad now if the model is free, else right after the running epoch.
function classifySoon() {
  pending = true;
  if (demo && !state.training && state.epochsDone > 0) classifyPad();
}

async function classifyPad() {
  pending = false;
  const { data, width, height } = pen.getImageData(0, 0, pad.width, pad.height);
  const probabilities = await demo.classify(new Uint8Array(data.buffer), width, height);
  const ranked = [...probabilities].map((p, i) => [p, classes[i]]).sort((a, b) => b[0] - a[0]);
  const box = $("predictions");
  box.replaceChildren();
  const heading = document.createElement("p");
  heading.className = "hint";
  heading.textContent = `after ${state.epochsDone} epoch${state.epochsDone > 1 ? "s" : ""}:`;
  box.append(heading);
  ranked.slice(0, 5).forEach(([p, name], i) => {
    const row = document.createElement("div");
    row.className = "bar" + (i === 0 ? " top" : "");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = name;
    const track = document.createElement("span");
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    const pct = document.createElement("span");
    pct.textContent = `${(100 * p).toFixed(1)}%`;
    row.append(label, track, pct);
    box.append(row);
  });
}

// ---- The gallery: one held-out image of each class ----------------------------------------

function gallery() {
  const box = $("gallery");
  classes.forEach((name, label) => {
    const rgba = demo.example(label); // held-out image `label` has label `label`
    const c = document.createElement("canvas");
    c.width = c.height = 32;
    c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), 32, 32), 0, 0);
    const fig = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = name;
    fig.append(c, caption);
    fig.title = "load this image into the pad";
    fig.addEventListener("click", () => {
      pen.imageSmoothingEnabled = false; // crisp 8x pixels, as the model saw them
      pen.drawImage(c, 0, 0, pad.width, pad.height);
      pen.imageSmoothingEnabled = true;
      classifySoon();
    });
    box.append(fig);
  });
}

// ---- Training -----------------------------------------------------------------------------

async function main() {
  sampleDrawing();
  drawCurve();
  await init();
  if (!navigator.gpu) {
    status("This browser has no WebGPU (Chrome or Edge 113+, Safari 26, Firefox 141+ on Windows).", true);
    return;
  }
  status("opening the GPU…");
  $("adapter").textContent = `Adapter: ${await describeAdapter()}.`;
  status(`generating ${config.train} training images and planning the model…`);
  demo = await Demo.create(config.train, config.val, config.batch, config.epochs);
  classes = demo.classes();
  state.stepsTotal = demo.stepsPerEpoch() * config.epochs;
  gallery();

  const started = performance.now();
  let stepInEpoch = 0;
  const onStep = (step, perEpoch, loss) => {
    stepInEpoch = step;
    if (loss !== undefined) state.losses.push(loss);
    const epoch = state.epochsDone + 1;
    const seconds = (performance.now() - started) / 1000;
    const images = (state.epochsDone * perEpoch + step) * config.batch;
    const lossText = state.losses.length ? state.losses[state.losses.length - 1].toFixed(3) : "…";
    status(
      `epoch ${epoch}/${config.epochs} · step ${step}/${perEpoch} · loss ${lossText} · ` +
        `${(images / seconds).toFixed(0)} images/s`,
    );
    queueRedraw();
  };
  for (let epoch = 0; epoch < config.epochs; epoch++) {
    state.training = true;
    const stats = await demo.trainEpoch(onStep);
    state.training = false;
    if (stats === null) break;
    state.epochs.push(stats);
    state.epochsDone = stats.epoch;
    status(
      `epoch ${stats.epoch}/${config.epochs} done in ${stats.seconds.toFixed(1)} s: held-out top-1 ` +
        `${(100 * stats.top1).toFixed(1)}%, loss ${stats.valLoss.toFixed(3)} (${config.val} images) · ` +
        `${stats.imagesPerSecond.toFixed(0)} images/s`,
    );
    drawCurve();
    await classifyPad(); // the drawing, as the model sees it now
  }
  state.done = true;
  const last = state.epochs[state.epochs.length - 1];
  const minutes = ((performance.now() - started) / 60000).toFixed(1);
  status(
    `trained ${state.stepsTotal} steps in ${minutes} min: held-out top-1 ${(100 * last.top1).toFixed(1)}%. ` +
      `Draw on the pad (or drop an image) to classify it.`,
  );
  if (pending) classifyPad();
}

main().catch((e) => {
  console.error(e);
  status(`error: ${e && e.message ? e.message : e}`, true);
});
