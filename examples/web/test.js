// The browser test (test.html), run headless by tools/web-test.sh.
//
// A headless browser gives a script no way to read what a page found after its GPU work
// finishes, so the page posts every report line to the server that serves it (POST /log, which
// tools/web-serve.py prints at once) and its verdict last (POST /result, which the script waits
// for). Any uncaught error also ends the run with a failing verdict, so a broken build fails
// fast instead of running into the script's timeout.
//
// The checks (examples/web/src/checks.rs):
//   (a) forward logits, loss and every gradient equal the native run's (rel L2 <= 1e-5);
//   (b) the parameters after ten training steps equal the native ones (rel L2 <= 1e-4);
//   (c) every kernel of the library equals its f64 CPU reference on a small odd-shaped case;
//   (d) the demo page's path (train an epoch, evaluate, classify) runs on a tiny set.

import init, { adapter, checkParity, checkKernels, Demo } from "./pkg/nfnet_web.js";

// The browser's own words for its WebGPU adapter (wgpu's adapter name is empty in a page).
async function describeAdapter() {
  const info = (await navigator.gpu.requestAdapter())?.info;
  const words = info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean) : [];
  return `${words.join(" ") || "unnamed"} (wgpu: ${await adapter()})`;
}

const lines = [];
const tally = { passed: 0, failed: 0 }; // one per compared group (a), (b) and kernel row (c)
let finished = false;

async function post(path, body) {
  try {
    await fetch(path, { method: "POST", body });
  } catch (e) {
    // Opened from a server without the POST handlers: the page still shows the report.
  }
}

async function log(line, cls) {
  lines.push(line);
  const el = document.createElement("div");
  el.textContent = line;
  if (cls) el.className = cls;
  document.getElementById("report").append(el);
  await post("/log", line);
}

async function finish(ok) {
  if (finished) return;
  finished = true;
  await log(ok ? "PASS" : "FAIL", ok ? "ok" : "fail");
  await post("/result", JSON.stringify({ ok, lines, ...tally }));
}

async function fail(what, e) {
  await log(`error ${what}: ${e && e.stack ? e.stack : e}`, "fail");
  await finish(false);
}

window.addEventListener("error", (e) => fail("(uncaught)", e.error || e.message));
window.addEventListener("unhandledrejection", (e) => fail("(unhandled rejection)", e.reason));

const fmt = (x) => (typeof x === "number" ? x.toExponential(2) : String(x));

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}${r.status === 404 ? " (run tools/web-test.sh, which writes the fixtures)" : ""}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function text(url) {
  return new TextDecoder().decode(await bytes(url));
}

async function main() {
  const started = performance.now();
  const seconds = () => ((performance.now() - started) / 1000).toFixed(1);
  await init();
  if (!navigator.gpu) throw new Error("this browser has no WebGPU (navigator.gpu is undefined)");
  await log(`adapter: ${await describeAdapter()}`);
  let ok = true;

  // (a) and (b): each fixture model against the native run.
  const manifest = JSON.parse(await text("fixtures/manifest.json"));
  for (const name of manifest.fixtures) {
    const [config, weights, input, native] = await Promise.all([
      text(`fixtures/${name}.json`),
      bytes(`fixtures/${name}.weights.safetensors`),
      bytes(`fixtures/${name}.input.safetensors`),
      bytes(`fixtures/${name}.native.safetensors`),
    ]);
    const groups = await checkParity(name, config, weights, input, native, manifest.steps);
    for (const [label, g] of [["(a)", groups[0]], ["(b)", groups[1]]]) {
      ok &&= g.ok;
      tally[g.ok ? "passed" : "failed"]++;
      await log(
        `${label} ${name} ${g.check}: ${g.tensors} tensors, worst rel L2 ${fmt(g.worst)} (${g.worstTensor}) ` +
          `(tolerance ${fmt(g.tolerance)}): ` +
          `${g.ok ? "ok" : "FAILED"}  [${seconds()} s]`,
        g.ok ? "ok" : "fail",
      );
      for (const f of g.failures) await log(`    ${f}`, "fail");
    }
  }

  // (c): every kernel against its CPU reference.
  const kernels = await checkKernels();
  let worst = { rel: 0, name: "" };
  for (const k of kernels) {
    ok &&= k.ok;
    tally[k.ok ? "passed" : "failed"]++;
    if (!(k.relL2 <= worst.rel)) worst = { rel: k.relL2, name: k.name };
    await log(
      `(c) ${k.name.padEnd(40)} max abs ${fmt(k.maxAbs)}  rel L2 ${fmt(k.relL2)}  ${k.ok ? "ok" : "FAILED"}${k.note ? "  " + k.note : ""}`,
      k.ok ? "ok" : "fail",
    );
  }
  const failed = kernels.filter((k) => !k.ok).length;
  await log(`(c) ${kernels.length} kernels, ${failed} failed, worst rel L2 ${fmt(worst.rel)} (${worst.name})  [${seconds()} s]`, failed ? "fail" : "ok");
  ok &&= kernels.length > 0;

  // (d): the demo's path (index.html) on a tiny run: an epoch trains with finite losses read
  // back step by step, the evaluation runs, and a classification gives probabilities.
  const demo = await Demo.create(64, 32, 16, 1);
  const losses = [];
  const stats = await demo.trainEpoch((step, perEpoch, loss) => loss !== undefined && losses.push(loss));
  const probabilities = await demo.classify(demo.example(3), 32, 32);
  const sum = probabilities.reduce((a, b) => a + b, 0);
  const demoOk =
    losses.length >= demo.stepsPerEpoch() - 1 && losses.every(Number.isFinite) && Number.isFinite(stats.valLoss) &&
    probabilities.length === demo.classes().length && Math.abs(sum - 1) < 1e-4;
  ok &&= demoOk;
  tally[demoOk ? "passed" : "failed"]++;
  await log(
    `(d) demo: ${demo.stepsPerEpoch()} steps, losses ${losses.map((l) => l.toFixed(3)).join(" ")}, held-out loss ` +
      `${stats.valLoss.toFixed(3)}, probabilities sum to ${sum.toFixed(6)}: ${demoOk ? "ok" : "FAILED"}  [${seconds()} s]`,
    demoOk ? "ok" : "fail",
  );
  await finish(ok);
}

main().catch((e) => fail("", e));
