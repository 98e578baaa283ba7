// router_lab's web-target harness: runs exported routers in onnxruntime-web (WebAssembly, the
// runtime a browser, Electron or React Native app uses) under Node.js and prints one JSON object.
//
//   node harness.mjs job.json
//
// job.json: {"latency_calls": N, "models": [{"name", "path", "input_name", "input_type":
// "float32"|"string", "width", "score_output", "decision_output", "rows": [[...], ...] | ["text", ...],
// "latency_rows": the first N rows are the ones single requests are timed on}]}
// Output: {"runtime", "runtime_version", "node_version", "models": {name: {"scores", "decisions",
// "single_scores", "single_decisions", "load_ms", "p50_us", "p99_us", "n_calls"}}} -- or
// {"error": "..."} with exit status 1.  Every model of the job runs in this one process.
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-web";

ort.env.wasm.numThreads = 1; // what one request on a phone or in a browser tab gets
ort.env.logLevel = "error";

function tensorOf(model, rows) {
  if (model.input_type === "string") return new ort.Tensor("string", rows, [rows.length, 1]);
  const flat = new Float32Array(rows.length * model.width);
  rows.forEach((row, i) => flat.set(row, i * model.width));
  return new ort.Tensor("float32", flat, [rows.length, model.width]);
}

async function score(session, model, rows) {
  const feeds = { [model.input_name]: tensorOf(model, rows) };
  const out = await session.run(feeds, [model.score_output, model.decision_output]);
  return [Array.from(out[model.score_output].data, Number),
          Array.from(out[model.decision_output].data, Boolean)];
}

function percentile(sorted, q) {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

async function runModel(model, latencyCalls) {
  const started = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(new Uint8Array(readFileSync(model.path)),
    { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const loadMs = Number(process.hrtime.bigint() - started) / 1e6;
  const [scores, decisions] = await score(session, model, model.rows);
  const singleScores = [], singleDecisions = [];
  for (const row of model.rows) { // one request at a time, as an app calls it
    const [s, d] = await score(session, model, [row]);
    singleScores.push(s[0]);
    singleDecisions.push(d[0]);
  }
  const timedRows = model.rows.slice(0, Math.max(1, model.latency_rows ?? model.rows.length));
  const feeds = timedRows.map((row) => ({ [model.input_name]: tensorOf(model, [row]) }));
  const outputs = [model.score_output, model.decision_output];
  for (let i = 0; i < Math.min(50, latencyCalls); i++) await session.run(feeds[i % feeds.length], outputs);
  const times = new Float64Array(latencyCalls);
  for (let i = 0; i < latencyCalls; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds[i % feeds.length], outputs);
    times[i] = Number(process.hrtime.bigint() - t0) / 1e3;
  }
  times.sort();
  await session.release();
  return { scores, decisions, single_scores: singleScores, single_decisions: singleDecisions,
           load_ms: loadMs, p50_us: percentile(times, 0.5), p99_us: percentile(times, 0.99),
           n_calls: latencyCalls };
}

try {
  const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
  const result = { runtime: "onnxruntime-web (wasm)", runtime_version: ort.env.versions.web,
                   node_version: process.version, models: {} };
  for (const model of job.models) {
    try {
      result.models[model.name] = await runModel(model, Math.max(1, job.latency_calls | 0));
    } catch (err) {
      result.models[model.name] = { error: String(err && err.message ? err.message : err).split("\n")[0] };
    }
  }
  process.stdout.write(JSON.stringify(result));
} catch (err) {
  process.stdout.write(JSON.stringify({ error: String(err && err.message ? err.message : err).split("\n")[0] }));
  process.exit(1);
}
