// The wfhost workflow prelude: every global a workflow script can use.
//
// Evaluated once inside `initialize-runtime`, so it is part of the pre-initialised snapshot.
// It is a function expression: the plugin calls it with `host`, an object of native functions
// that reach the wfhost capability surface (wit/wfhost.wit). `host` itself is never put on
// `globalThis`, so a script can only reach the host through the API below.
//
// Semantics follow Claude Code's dynamic workflows (see docs/script-api.md and
// ../shared/conformance); deliberate differences are documented in docs/.
(function (host) {
  "use strict";

  // ---- limits a script sees (the host enforces them again; these only shape the errors)
  // Why 4096: one parallel()/pipeline() call beyond this is almost certainly a runaway loop,
  // and the per-run agent cap (1000 by default) is far below it anyway.
  const MAX_FANOUT = 4096;

  const DATE_MSG =
    "Date.now() / new Date() are unavailable in workflow scripts (breaks resume). Stamp results after the workflow returns, or pass timestamps via args.";
  const RANDOM_MSG =
    "Math.random() is unavailable in workflow scripts (breaks resume). For N independent samples, include the index in the agent label or prompt.";
  const EVAL_MSG = "Code generation from strings disallowed for this context";
  const NEST_MSG =
    "workflow() cannot be called from within a child workflow — nesting is limited to one level. Inline the inner script or call its agents directly.";

  class WorkflowAgentCapError extends Error {}
  Object.defineProperty(WorkflowAgentCapError.prototype, "name", { value: "WorkflowAgentCapError" });
  class WorkflowBudgetError extends Error {}
  Object.defineProperty(WorkflowBudgetError.prototype, "name", { value: "WorkflowBudgetError" });
  // The reference's error for an unusable agent schema (its name, as scripts print it).
  class TelemetrySafeError extends Error {}
  Object.defineProperty(TelemetrySafeError.prototype, "name", { value: "TelemetrySafeError" });
  const ERROR_KINDS = { WorkflowAgentCapError, WorkflowBudgetError, TelemetrySafeError, TypeError, RangeError, Error };

  function hostError(e) {
    const Kind = ERROR_KINDS[e && e.name] || Error;
    return new Kind(e && e.message !== undefined ? e.message : String(e));
  }

  // ---- determinism: the globals that would make a re-run differ from the first run
  const RealDate = Date;
  function WfDate(...a) {
    if (new.target === undefined || a.length === 0) throw new Error(DATE_MSG);
    return Reflect.construct(RealDate, a, new.target);
  }
  WfDate.prototype = RealDate.prototype;
  WfDate.UTC = RealDate.UTC;
  WfDate.parse = RealDate.parse;
  WfDate.now = function now() {
    throw new Error(DATE_MSG);
  };
  Object.defineProperty(RealDate.prototype, "constructor", { value: WfDate, writable: false, configurable: false });
  Math.random = function random() {
    throw new Error(RANDOM_MSG);
  };

  // ---- no code generation from strings: eval, new Function and the constructors reachable
  // through any function (async, generator, async generator) all throw EvalError.
  function blockedEval() {
    throw new EvalError(EVAL_MSG);
  }
  const fnProtos = [
    Object.getPrototypeOf(function () {}),
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function* () {}),
  ];
  let BlockedFunction;
  for (const proto of fnProtos) {
    const Blocked = function Function() {
      throw new EvalError(EVAL_MSG);
    };
    Object.defineProperty(Blocked, "prototype", { value: proto, writable: false });
    Object.defineProperty(proto, "constructor", { value: Blocked, writable: false, configurable: false });
    BlockedFunction = BlockedFunction || Blocked;
  }

  // ---- the global object a script sees: exactly the documented globals
  const g = globalThis;
  Object.defineProperty(g, "Date", { value: WfDate, writable: true, configurable: true });
  Object.defineProperty(g, "Function", { value: BlockedFunction, writable: true, configurable: true });
  Object.defineProperty(g, "eval", { value: blockedEval, writable: true, configurable: true });
  for (const name of [
    "Javy", "fetch", "require", "process", "WebAssembly", "setInterval", "clearInterval",
    "queueMicrotask", "structuredClone", "crypto", "performance", "SharedArrayBuffer",
    "Atomics", "Bun", "Deno", "module", "exports", "print", "scriptArgs", "std", "os",
  ]) {
    Reflect.deleteProperty(g, name);
  }
  installLocale(g, host);

  // ---- run state shared by the top-level script and its child workflow
  const state = {
    // handle -> { kind, resolve, fn, args }. A null-prototype object, not a Map: QuickJS hashes
    // an integer-valued key below 2^20 to one bucket, so a Map keyed by handles walks every
    // agent in flight on each set (11–14 % of wall time at 1,000–5,000 agents).
    pending: Object.create(null),
    pendingSize: 0,
    spent: 0,
    total: null,
    agentsLeft: Infinity,
    outcome: undefined, // set once the top-level function settles
    // The parallel()/pipeline() slot whose code is running synchronously right now: agents it
    // starts are recorded with it, so a trace can draw fork/join and stage edges.
    group: null,
    groups: 0,
  };

  function inGroup(group, fn) {
    const outer = state.group;
    state.group = group;
    try {
      return fn();
    } finally {
      state.group = outer;
    }
  }

  function capError(message) {
    return new WorkflowAgentCapError(message);
  }

  function call(fnName, request) {
    const reply = JSON.parse(host[fnName](JSON.stringify(request)));
    if (reply.error) throw hostError(reply.error);
    return reply;
  }

  // What crosses the reference's realm boundary (parallel() and pipeline() results): own
  // enumerable string keys, deep, with cycles and shared references kept; functions become
  // undefined; Date, Map, Set, RegExp, Error and class instances become plain objects of their
  // own enumerable keys; array holes become undefined. Primitives pass as they are.
  // `seen`: a Map shared by the copies that must keep their shared references, or null (made
  // here when the value is an object: most results are strings and need none).
  function realmCopy(v, seen) {
    if (typeof v === "function") return undefined;
    if (v === null || typeof v !== "object") return v;
    if (seen === null) seen = new Map();
    if (seen.has(v)) return seen.get(v);
    if (Array.isArray(v)) {
      const out = new Array(v.length);
      seen.set(v, out);
      for (let i = 0; i < v.length; i++) out[i] = realmCopy(v[i], seen);
      return out;
    }
    const out = {};
    seen.set(v, out);
    for (const k of Object.keys(v)) out[k] = realmCopy(v[k], seen);
    return out;
  }

  function describe(e) {
    if (e instanceof Error) return e.message;
    return String(e);
  }

  function formatLogArg(v) {
    if (typeof v === "string") return v;
    if (v === null || typeof v !== "object") return String(v);
    return "[object]";
  }

  function formatConsoleArg(v) {
    if (typeof v === "string") return v;
    if (v instanceof Error) return String(v);
    if (v === null || typeof v !== "object") return String(v);
    try {
      return JSON.stringify(v);
    } catch (_) {
      return "[object]";
    }
  }

  // The API object of one workflow scope: depth 0 is the script the user ran, depth 1 a
  // child started with workflow(). Everything except logging prefix and nesting is shared.
  function makeApi(scope) {
    const prefix = scope.name ? `[${scope.name}] ` : "";
    let currentPhase = null;

    function log(msg) {
      host.log(0, prefix + formatLogArg(msg));
    }
    const console = Object.freeze({
      log: (...a) => host.log(0, prefix + a.map(formatConsoleArg).join(" ")),
      info: (...a) => host.log(0, prefix + a.map(formatConsoleArg).join(" ")),
      debug: (...a) => host.log(0, prefix + a.map(formatConsoleArg).join(" ")),
      warn: (...a) => host.log(1, prefix + "[warn] " + a.map(formatConsoleArg).join(" ")),
      error: (...a) => host.log(2, prefix + "[error] " + a.map(formatConsoleArg).join(" ")),
    });

    // Lenient as the reference is: any value is a title (`phase(3)` → "3", `phase("")`).
    function phase(title) {
      const t = typeof title === "string" ? title : formatLogArg(title);
      currentPhase = t;
      host.phase(t);
    }

    function agent(prompt, opts) {
      try {
        // Lenient as the reference is: the prompt is converted to a string (`agent()` asks
        // "undefined", `agent(42)` "42", an object "[object]").
        if (typeof prompt !== "string") prompt = formatLogArg(prompt);
        if (opts !== undefined && (opts === null || typeof opts !== "object"))
          throw new TypeError("agent() options must be an object: { schema, model, effort, label, phase, agentType, isolation }");
        const o = opts || {};
        // The typed hot path: the prompt, label, phase and slot cross as they are; only the
        // rarer options travel as JSON, and only when one is set.
        let rare = "";
        if (o.schema !== undefined || o.model !== undefined || o.effort !== undefined || o.agentType !== undefined || o.isolation !== undefined || o.stallMs !== undefined || o.sharedHeadLength !== undefined) {
          rare = JSON.stringify({ schema: o.schema, model: o.model, effort: o.effort, agentType: o.agentType, isolation: o.isolation, stallMs: o.stallMs, sharedHeadLength: o.sharedHeadLength });
        }
        const phase = o.phase !== undefined ? o.phase : currentPhase;
        const g = state.group;
        const slot = !g ? [0, 0, 0, 0] : g.kind === "parallel" ? [1, g.id, g.index, 0] : [2, g.id, g.item, g.stage];
        const handle = host.spawnAgent(
          prompt,
          typeof o.label === "string" ? o.label : "",
          typeof phase === "string" ? phase : "",
          scope.name || "",
          slot,
          rare,
        );
        if (handle < 0) throw hostError(JSON.parse(host.takeError()));
        state.agentsLeft--;
        return new Promise((resolve, reject) => {
          state.pending[handle] = { kind: "agent", resolve, reject };
          state.pendingSize++;
        });
      } catch (e) {
        return Promise.reject(e);
      }
    }

    function checkFanout(fname, items) {
      if (!Array.isArray(items))
        throw new TypeError(
          fname === "parallel" ? "parallel() expects an array of functions" : "pipeline() expects an array as the first argument",
        );
      if (items.length > MAX_FANOUT)
        throw new RangeError(
          `${fname}() got ${items.length} items; the limit is ${MAX_FANOUT} per call. Split the work into batches of at most ${MAX_FANOUT}.`,
        );
      if (state.agentsLeft <= 0) throw capError(state.capMessage);
    }

    async function parallel(thunks) {
      checkFanout("parallel", thunks);
      const id = ++state.groups;
      thunks.forEach((t, i) => {
        if (typeof t !== "function") {
          // The reference's message, nothing more (scripts read it); which entry, in the run's log.
          host.log(3, `parallel(): entry ${i} is ${t === null ? "null" : typeof t}, not a function`);
          throw new TypeError("parallel() expects an array of functions, not promises. Wrap each call: () => agent(...)");
        }
      });
      const settled = await Promise.all(
        thunks.map((t, index) => {
          try {
            return Promise.resolve(inGroup({ kind: "parallel", id, index }, t)).then(
              (value) => ({ ok: true, value }),
              (error) => ({ ok: false, error }),
            );
          } catch (error) {
            return { ok: false, error };
          }
        }),
      );
      return settled.map((s, i) => {
        if (s.ok) return realmCopy(s.value, null);
        host.log(0, `parallel[${i}] failed: ${describe(s.error)}`);
        return null;
      });
    }

    async function pipeline(items, ...stages) {
      checkFanout("pipeline", items);
      const id = ++state.groups;
      stages.forEach((s, i) => {
        if (typeof s !== "function") {
          host.log(3, `pipeline(): stage ${i + 1} is ${s === null ? "null" : typeof s}, not a function`);
          throw new TypeError("pipeline() stages must be functions: pipeline(items, item => ..., result => ...)");
        }
      });
      const failures = [];
      const results = await Promise.all(
        items.map(async (item, index) => {
          let prev = item;
          try {
            for (const [s, stage] of stages.entries()) {
              const p = prev;
              prev = await inGroup({ kind: "pipeline", id, item: index, stage: s }, () => stage(p, item, index));
              if (prev === null) return null;
            }
            return prev;
          } catch (e) {
            failures.push([index, e]);
            return null;
          }
        }),
      );
      failures.sort((a, b) => a[0] - b[0]);
      for (const [i, e] of failures) host.log(0, `pipeline[${i}] failed: ${describe(e)}`);
      // Each item's final value crosses back as a copy (values between stages do not).
      const copies = new Map();
      return results.map((r) => realmCopy(r, copies));
    }

    async function workflow(target, childArgs) {
      if (scope.depth > 0) throw new Error(NEST_MSG);
      let request;
      if (typeof target === "string") request = { name: target };
      else if (target !== null && typeof target === "object" && typeof target.scriptPath === "string")
        request = { scriptPath: target.scriptPath };
      else throw new TypeError("workflow() expects a workflow name (string) or {scriptPath: string}");
      const child = host.loadWorkflow(JSON.stringify(request));
      if (child.error) throw hostError(child.error);
      host.log(0, `▸ running dynamic workflow ${child.name}`);
      const api = makeApi({ depth: scope.depth + 1, name: child.name, args: childArgs });
      let value;
      try {
        value = await child.main(api);
      } catch (e) {
        host.log(0, `▸ ${child.name} failed: ${describe(e)}`);
        throw e;
      }
      host.log(0, `▸ ${child.name} done`);
      return value;
    }

    function setTimeout(fn, ms, ...fnArgs) {
      if (typeof fn !== "function") throw new TypeError("setTimeout() expects a function");
      const delay = Math.max(0, Number(ms) || 0);
      const reply = call("spawn", { kind: "timer", ms: delay });
      state.pending[reply.handle] = { kind: "timer", fn, args: fnArgs };
      state.pendingSize++;
      return reply.handle;
    }

    function clearTimeout(handle) {
      const p = state.pending[handle];
      if (p && p.kind === "timer") {
        delete state.pending[handle];
        state.pendingSize--;
        host.cancel(handle);
      }
    }

    return {
      agent, parallel, pipeline, workflow, phase, log, console, budget, setTimeout, clearTimeout,
      args: scope.args,
    };
  }

  // Frozen `{ total, spent(), remaining() }`, made once the run context is known (start()).
  let budget;

  // The host reads at most this many levels of JSON (serde_json's limit).
  const MAX_RESULT_DEPTH = 128;

  // Checks the result before JSON.stringify sees it. `ancestors` holds the objects on the path
  // from the root: QuickJS's stringify has no cycle check on WASI, so a cyclic result would
  // overflow the stack instead of failing with a message.
  function serialisable(value, path, ancestors = []) {
    const t = typeof value;
    const fail = (why) => {
      throw new TypeError(`the workflow result is not JSON-serialisable: ${path} ${why}`);
    };
    if (t === "function") fail("is a function");
    if (t === "symbol") fail("is a symbol");
    if (t === "bigint") fail("is a BigInt");
    if (value !== null && t === "object" && typeof value.toJSON !== "function") {
      if (ancestors.includes(value)) fail("refers back to an object that contains it (a cycle)");
      if (ancestors.length >= MAX_RESULT_DEPTH) fail(`is nested deeper than ${MAX_RESULT_DEPTH} levels`);
      const inner = [...ancestors, value];
      if (Array.isArray(value)) value.forEach((v, i) => serialisable(v, `${path}[${i}]`, inner));
      else for (const k of Object.keys(value)) serialisable(value[k], `${path}.${k}`, inner);
    }
  }

  function errorReport(e) {
    if (e instanceof Error) {
      return { error: String(e), stack: typeof e.stack === "string" ? e.stack : undefined };
    }
    // The reference reports a thrown non-Error as plain "Error"; keep that first line and add
    // what was thrown so the user can find it.
    let shown;
    try {
      shown = JSON.stringify(e);
    } catch (_) {
      shown = undefined;
    }
    return { error: `Error\nthe script threw a non-Error value: ${shown === undefined ? String(e) : shown}` };
  }

  // ---- the entry points the plugin calls (never visible to scripts)
  return {
    // ctx: the run context from the host (args, budget total, agent cap).
    start(ctxJson, main) {
      const ctx = JSON.parse(ctxJson);
      state.total = ctx.budgetTotal === undefined ? null : ctx.budgetTotal;
      state.agentsLeft = ctx.agentCap;
      state.capMessage = ctx.capMessage;
      budget = Object.freeze({
        total: state.total,
        spent: () => state.spent,
        remaining: () => (state.total === null ? Infinity : Math.max(0, state.total - state.spent)),
      });
      const top = makeApi({ depth: 0, name: null, args: ctx.args });
      for (const [k, v] of Object.entries(top)) {
        Object.defineProperty(g, k, { value: v, writable: true, configurable: true, enumerable: false });
      }
      (async () => main(top))().then(
        (value) => {
          try {
            serialisable(value, "result");
            state.outcome = JSON.stringify({ ok: true, value: value === undefined ? null : value });
          } catch (e) {
            state.outcome = JSON.stringify({ ok: false, ...errorReport(e) });
          }
        },
        (e) => {
          state.outcome = JSON.stringify({ ok: false, ...errorReport(e) });
        },
      );
    },
    // One finished job from the host: its handle, the run's output tokens so far, and its
    // value — kind 0: none (a timer, a failed agent), 1: text, 2: JSON, 3: a rejection.
    deliver(handle, kind, spent, payload) {
      state.spent = spent;
      const p = state.pending[handle];
      if (!p) return;
      delete state.pending[handle];
      state.pendingSize--;
      if (p.kind === "timer") p.fn(...p.args);
      // kind 3: the agent's call rejects (a schema never met), with this message.
      else if (kind === 3) p.reject(new Error(payload));
      else p.resolve(kind === 1 ? payload : kind === 2 ? JSON.parse(payload) : null);
    },
    // After the jobs have run: the outcome once the script has settled, "" when nothing is
    // outstanding (a deadlock), null while agents or timers are.
    status() {
      if (state.outcome !== null && state.outcome !== undefined) return state.outcome;
      return state.pendingSize === 0 ? "" : null;
    },
  };

  // ---- locale-aware strings, as the reference's ICU gives them for its default locale.
  // Collation and numbers come from ICU4X compiled into the guest (plugin/src/locale.rs):
  // `localeCompare`, `Intl.Collator`, `Number.prototype.toLocaleString`, `Intl.NumberFormat`.
  // Dates are formatted here in en-US patterns, in UTC (the sandbox has no time zone):
  // `toLocale{,Date,Time}String`, `Intl.DateTimeFormat`. docs/conformance.md lists what differs.
  function installLocale(g, host) {
    const SENSITIVITY = { base: 0, accent: 1, case: 2, variant: 3 };
    const hidden = (obj, name, value) =>
      Object.defineProperty(obj, name, { value, writable: true, configurable: true, enumerable: false });
    function collatorOptions(options) {
      const o = options === undefined ? {} : Object(options);
      const sensitivity = o.sensitivity === undefined ? "variant" : String(o.sensitivity);
      if (!(sensitivity in SENSITIVITY))
        throw new RangeError(`Value ${sensitivity} out of range for Intl.Collator options property sensitivity`);
      return {
        usage: o.usage === "search" ? "search" : "sort",
        sensitivity,
        ignorePunctuation: !!o.ignorePunctuation,
        numeric: !!o.numeric,
      };
    }
    const collate = (o, a, b) => host.collate(String(a), String(b), o.numeric, SENSITIVITY[o.sensitivity]);
    hidden(String.prototype, "localeCompare", function localeCompare(that, locales, options) {
      if (this === undefined || this === null)
        throw new TypeError("String.prototype.localeCompare called on null or undefined");
      return collate(collatorOptions(options), this, that);
    });
    function Collator(locales, options) {
      if (!new.target) return new Collator(locales, options);
      const o = collatorOptions(options);
      hidden(this, "__options", o);
    }
    Object.defineProperty(Collator.prototype, "compare", {
      configurable: true,
      get() {
        const o = this.__options;
        return (a, b) => collate(o, a, b);
      },
    });
    hidden(Collator.prototype, "resolvedOptions", function resolvedOptions() {
      const o = this.__options;
      return { locale: "en-US", usage: o.usage, sensitivity: o.sensitivity, ignorePunctuation: o.ignorePunctuation, collation: "default", numeric: o.numeric, caseFirst: "false" };
    });
    hidden(Collator, "supportedLocalesOf", () => ["en-US"]);

    function numberOptions(options) {
      const o = options === undefined ? {} : Object(options);
      const style = o.style === undefined ? "decimal" : String(o.style);
      if (!["decimal", "percent", "currency"].includes(style))
        throw new RangeError(`Value ${style} out of range for Intl.NumberFormat options property style`);
      const currency = o.currency === undefined ? undefined : String(o.currency).toUpperCase();
      // ECMA-402's IsWellFormedCurrencyCode: three ASCII letters.
      if (currency !== undefined && !/^[A-Z]{3}$/.test(currency))
        throw new RangeError(`Invalid currency code : ${String(o.currency)}`);
      if (style === "currency" && currency === undefined)
        throw new TypeError("Currency code is required with currency style.");
      const digits = (v, dflt, name) => {
        if (v === undefined) return dflt;
        const n = Math.floor(Number(v));
        if (!(n >= 0 && n <= 100)) throw new RangeError(`${name} value is out of range.`);
        return n;
      };
      const [dmin, dmax] = style === "currency" ? [2, 2] : style === "percent" ? [0, 0] : [0, 3];
      const min = digits(o.minimumFractionDigits, dmin, "minimumFractionDigits");
      const max = digits(o.maximumFractionDigits, Math.max(min, dmax), "maximumFractionDigits");
      if (max < min) throw new RangeError("maximumFractionDigits value is out of range.");
      return { style, currency, min, max, grouping: o.useGrouping === undefined ? true : !!o.useGrouping && o.useGrouping !== "false" };
    }
    const SYMBOLS = { USD: "$", EUR: "€", GBP: "£", JPY: "¥" };
    // A BigInt is formatted from its own digits (as a Number, 10n ** 400n would be ∞).
    function formatBigInt(o, x) {
      const neg = x < 0n;
      let digits = String(neg ? -x : x);
      if (o.style === "percent") digits = digits === "0" ? "0" : digits + "00";
      if (o.grouping) digits = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
      let text = o.min > 0 ? digits + "." + "0".repeat(o.min) : digits;
      if (o.style === "percent") text += "%";
      if (o.style === "currency") text = (SYMBOLS[o.currency] || o.currency + "\u00a0") + text;
      return neg ? "-" + text : text;
    }
    function formatNumber(o, x) {
      if (typeof x === "bigint") return formatBigInt(o, x);
      x = Number(x);
      if (o.style === "percent") x *= 100;
      const neg = x < 0 || Object.is(x, -0);
      let text = host.formatNumber(Math.abs(x), o.min, o.max, o.grouping);
      if (o.style === "percent") text += "%";
      if (o.style === "currency") text = (SYMBOLS[o.currency] || o.currency + "\u00a0") + text;
      // As ICU's default sign display: negative numbers keep their sign, even when they round
      // to zero (`(-0.0001).toLocaleString()` is "-0").
      return neg && !Number.isNaN(x) ? "-" + text : text;
    }
    hidden(Number.prototype, "toLocaleString", function toLocaleString(locales, options) {
      return formatNumber(numberOptions(options), Number.prototype.valueOf.call(this));
    });
    function NumberFormat(locales, options) {
      if (!new.target) return new NumberFormat(locales, options);
      hidden(this, "__options", numberOptions(options));
    }
    Object.defineProperty(NumberFormat.prototype, "format", {
      configurable: true,
      get() {
        const o = this.__options;
        return (x) => formatNumber(o, x);
      },
    });
    hidden(NumberFormat.prototype, "resolvedOptions", function resolvedOptions() {
      const o = this.__options;
      const r = { locale: "en-US", numberingSystem: "latn", style: o.style, minimumIntegerDigits: 1, minimumFractionDigits: o.min, maximumFractionDigits: o.max, useGrouping: o.grouping ? "auto" : false };
      if (o.currency) r.currency = o.currency;
      return r;
    });
    hidden(NumberFormat, "supportedLocalesOf", () => ["en-US"]);

    const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    const pad2 = (n) => String(n).padStart(2, "0");
    function datePart(d, o) {
      const y = d.getUTCFullYear(), m = d.getUTCMonth(), day = d.getUTCDate();
      const year = o.year === "2-digit" ? pad2(y % 100) : String(y);
      const dd = o.day === "2-digit" ? pad2(day) : String(day);
      if (o.month === "long" || o.month === "short") {
        const month = o.month === "long" ? MONTHS[m] : MONTHS[m].slice(0, 3);
        const wd = o.weekday === "long" ? DAYS[d.getUTCDay()] + ", " : o.weekday === "short" ? DAYS[d.getUTCDay()].slice(0, 3) + ", " : "";
        const parts = [month + (o.day === undefined ? "" : " " + dd)];
        return wd + parts.join("") + (o.year === undefined ? "" : (o.day === undefined ? " " : ", ") + year);
      }
      const mm = o.month === "2-digit" ? pad2(m + 1) : String(m + 1);
      return [o.month === undefined ? null : mm, o.day === undefined ? null : dd, o.year === undefined ? null : year].filter((p) => p !== null).join("/");
    }
    function timePart(d, o) {
      const h = d.getUTCHours();
      const h12 = o.hour12 === false ? pad2(h) : String(h % 12 === 0 ? 12 : h % 12);
      let t = h12 + ":" + pad2(d.getUTCMinutes());
      if (o.second !== undefined) t += ":" + pad2(d.getUTCSeconds());
      return o.hour12 === false ? t : t + (h < 12 ? "\u202fAM" : "\u202fPM");
    }
    const DATE_DEFAULT = { year: "numeric", month: "numeric", day: "numeric" };
    const TIME_DEFAULT = { hour: "numeric", minute: "2-digit", second: "2-digit" };
    function dateOptions(options, defaults) {
      const o = options === undefined ? {} : Object(options);
      const picked = {};
      for (const k of ["weekday", "year", "month", "day", "hour", "minute", "second", "hour12", "timeZone"]) if (o[k] !== undefined) picked[k] = o[k];
      if (picked.timeZone !== undefined && !/^(utc|gmt|etc\/utc)$/i.test(String(picked.timeZone)))
        throw new RangeError(`Time zone ${picked.timeZone} is not available in workflow scripts: they run in UTC`);
      const any = ["weekday", "year", "month", "day", "hour", "minute", "second"].some((k) => picked[k] !== undefined);
      return any ? picked : Object.assign(picked, defaults);
    }
    function formatDate(d, o) {
      if (Number.isNaN(RealDate.prototype.getTime.call(d))) return "Invalid Date";
      const hasDate = o.year !== undefined || o.month !== undefined || o.day !== undefined || o.weekday !== undefined;
      const hasTime = o.hour !== undefined || o.minute !== undefined || o.second !== undefined;
      const parts = [];
      if (hasDate) parts.push(datePart(d, o));
      if (hasTime) parts.push(timePart(d, o));
      return parts.join(", ");
    }
    hidden(RealDate.prototype, "toLocaleDateString", function toLocaleDateString(locales, options) {
      return formatDate(this, dateOptions(options, DATE_DEFAULT));
    });
    hidden(RealDate.prototype, "toLocaleTimeString", function toLocaleTimeString(locales, options) {
      return formatDate(this, dateOptions(options, TIME_DEFAULT));
    });
    hidden(RealDate.prototype, "toLocaleString", function toLocaleString(locales, options) {
      return formatDate(this, dateOptions(options, Object.assign({}, DATE_DEFAULT, TIME_DEFAULT)));
    });
    function DateTimeFormat(locales, options) {
      if (!new.target) return new DateTimeFormat(locales, options);
      hidden(this, "__options", dateOptions(options, DATE_DEFAULT));
    }
    Object.defineProperty(DateTimeFormat.prototype, "format", {
      configurable: true,
      get() {
        const o = this.__options;
        return (d) => formatDate(d === undefined ? new WfDate() : new RealDate(RealDate.prototype.getTime.call(d)), o);
      },
    });
    hidden(DateTimeFormat.prototype, "resolvedOptions", function resolvedOptions() {
      return Object.assign({ locale: "en-US", calendar: "gregory", numberingSystem: "latn", timeZone: "UTC" }, this.__options);
    });
    hidden(DateTimeFormat, "supportedLocalesOf", () => ["en-US"]);

    hidden(BigInt.prototype, "toLocaleString", function toLocaleString(locales, options) {
      return formatBigInt(numberOptions(options), BigInt.prototype.valueOf.call(this));
    });

    // Case mappings that depend on the language: Turkish and Azeri dotted and dotless i.
    const turkic = (locales) => {
      const l = Array.isArray(locales) ? locales[0] : locales;
      return typeof l === "string" && /^(tr|az)(-|_|$)/i.test(l);
    };
    const coercible = (v, name) => {
      if (v === undefined || v === null) throw new TypeError(`String.prototype.${name} called on null or undefined`);
      return String(v);
    };
    hidden(String.prototype, "toLocaleUpperCase", function toLocaleUpperCase(locales) {
      const s = coercible(this, "toLocaleUpperCase");
      return turkic(locales) ? s.replace(/i/g, "\u0130").toUpperCase() : s.toUpperCase();
    });
    hidden(String.prototype, "toLocaleLowerCase", function toLocaleLowerCase(locales) {
      const s = coercible(this, "toLocaleLowerCase");
      return turkic(locales) ? s.replace(/\u0130/g, "i").replace(/I/g, "\u0131").toLowerCase() : s.toLowerCase();
    });

    // `[a, [a]]` with a cycle: engines give "" for an array already being joined; QuickJS's
    // own recursed until the stack overflowed, past what a script could catch.
    const joining = new Set();
    hidden(Array.prototype, "toLocaleString", function toLocaleString(locales, options) {
      const a = Object(this);
      if (joining.has(a)) return "";
      joining.add(a);
      try {
        const n = Math.min(Number(a.length) || 0, Number.MAX_SAFE_INTEGER);
        let out = "";
        for (let i = 0; i < n; i++) {
          if (i > 0) out += ",";
          const e = a[i];
          if (e !== undefined && e !== null) out += String(e.toLocaleString(locales, options));
        }
        return out;
      } finally {
        joining.delete(a);
      }
    });

    const Intl = typeof g.Intl === "object" && g.Intl !== null && !Object.isFrozen(g.Intl) ? g.Intl : {};
    hidden(Intl, "Collator", Collator);
    hidden(Intl, "NumberFormat", NumberFormat);
    hidden(Intl, "DateTimeFormat", DateTimeFormat);
    hidden(Intl, "getCanonicalLocales", (l) => (l === undefined ? [] : [].concat(l).map(String)));
    Object.defineProperty(g, "Intl", { value: Intl, writable: true, configurable: true });
  }

});
