// The workflow primitives over in-process promises: what a user would run instead of wfhost
// (node, no sandbox). Used only by the benchmarks.
//   node bench/node-shim.mjs SCRIPT.js [--delay-ms N]
// Agents answer like wfhost's mock backend: `R(` + the first 40 characters + `)`, honouring
// `[delay=MS]`.
import { readFileSync } from "node:fs";

const [, , path] = process.argv;
const source = readFileSync(path, "utf8").replace(/^export const meta\s*=/m, "const meta =");
const logs = [];
const log = (m) => logs.push(typeof m === "string" ? m : "[object]");
const phase = () => {};
const delayOf = (p) => Number((/\[delay=(\d+)\]/.exec(p) || [])[1] || 0);
const agent = (prompt) =>
  new Promise((resolve) => {
    const d = delayOf(prompt);
    const answer = () => resolve(`R(${prompt.slice(0, 40)})`);
    d ? setTimeout(answer, d) : queueMicrotask(answer);
  });
const parallel = async (thunks) =>
  (await Promise.allSettled(thunks.map((t) => Promise.resolve().then(t)))).map((s) => (s.status === "fulfilled" ? s.value : null));
const pipeline = (items, ...stages) =>
  Promise.all(
    items.map(async (item, i) => {
      let prev = item;
      for (const s of stages) {
        try {
          prev = await s(prev, item, i);
        } catch {
          return null;
        }
        if (prev === null) return null;
      }
      return prev;
    }),
  );
const AsyncFunction = (async () => {}).constructor;
const body = new AsyncFunction("agent", "parallel", "pipeline", "phase", "log", "args", source);
const result = await body(agent, parallel, pipeline, phase, log, undefined);
console.log(JSON.stringify({ result, logs: logs.length }));
