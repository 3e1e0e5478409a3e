// Type declarations for wfhost workflow scripts. Kept in sync with docs/script-api.md.
//
// A workflow script starts with `export const meta = {...}` (a pure literal) and its body runs
// as an async function: top-level `await` and `return` work. These are its only globals
// besides the JavaScript built-ins.

/** The metadata every script starts with: `export const meta = { ... }`. */
interface WorkflowMeta {
  /** Non-empty. Also the name `workflow("name")` and `wfhost run NAME` use for saved workflows. */
  name: string;
  /** Non-empty, one line: shown before approval and in `wfhost list`. */
  description: string;
  title?: string;
  /** When an agent should pick this workflow. */
  whenToUse?: string;
  phases?: { title: string; detail?: string; model?: string }[];
}

/** A JSON Schema whose root is an object: `{ type: "object", properties, required? }`. */
interface ObjectSchema {
  type: "object";
  properties: Record<string, unknown>;
  required?: string[];
  [keyword: string]: unknown;
}

interface AgentOptions {
  /** Ask for a structured answer: the agent resolves to an object valid against it. */
  schema?: ObjectSchema;
  /** Backend model name, e.g. "claude-sonnet-4-5". */
  model?: string;
  effort?: "low" | "medium" | "high" | string;
  /** Shown in logs and progress. Default: the start of the prompt. */
  label?: string;
  /** The phase this agent belongs to. Default: the last `phase()` title. */
  phase?: string;
  agentType?: string;
  /** `"worktree"`: run in a fresh git worktree (backends with tools only). */
  isolation?: "worktree" | string;
  /**
   * Cancel the call when its backend shows no progress for this long (retried once, then it
   * fails). Default: the run's `--stall-timeout` (10 minutes).
   */
  stallMs?: number;
  /**
   * How many characters at the start of the prompt this agent shares with the agents started
   * with it (a wfhost extension). The `messages` backend caches that head once and holds the
   * others until it can be read from the cache (at most 5 s). Default: found by wfhost.
   */
  sharedHeadLength?: number;
}

/**
 * Runs one agent. Resolves to its final text, or to an object when `schema` is given.
 * Resolves to `null` (and logs `[label] failed: …`) when the agent fails; never rejects for
 * that. Rejects before starting on a bad schema, at the agent cap (WorkflowAgentCapError) or
 * when the token budget is spent (WorkflowBudgetError).
 */
declare function agent(prompt: string, options?: AgentOptions & { schema?: undefined }): Promise<string | null>;
declare function agent<T = Record<string, unknown>>(prompt: string, options: AgentOptions & { schema: ObjectSchema }): Promise<T | null>;

/**
 * Runs every thunk at once and waits for all (a barrier). Never rejects for a failing thunk:
 * its slot is `null` and `parallel[i] failed: …` is logged. At most 4096 thunks per call.
 */
declare function parallel<T extends readonly (() => unknown)[]>(
  thunks: T,
): Promise<{ [K in keyof T]: Awaited<ReturnType<T[K]>> | null }>;

/**
 * Runs each item through the stages independently (no barrier between stages). A stage gets
 * `(previous, item, index)`. A stage that throws or returns `null` makes that item `null` and
 * skips its later stages. Results are in input order. At most 4096 items per call.
 */
declare function pipeline<I>(items: readonly I[], ...stages: ((prev: any, item: I, index: number) => unknown)[]): Promise<unknown[]>;

/**
 * Runs a saved workflow (by name) or a script file inline, sharing this run's agent cap and
 * budget; resolves to its return value. One level only: a child cannot call workflow().
 */
declare function workflow(target: string | { scriptPath: string }, args?: unknown): Promise<unknown>;

/** Later agents belong to this phase. */
declare function phase(title: string): void;

/** A narrator line. Strings print as they are; objects print as `[object]`. */
declare function log(message: unknown): void;

/** Narrator lines; arguments are joined with spaces, objects as JSON. `warn` is prefixed `[warn] `. */
declare const console: {
  log(...a: unknown[]): void;
  info(...a: unknown[]): void;
  debug(...a: unknown[]): void;
  warn(...a: unknown[]): void;
  error(...a: unknown[]): void;
};

/** `--args` / `--args-file`: JSON when it parses as JSON, otherwise a string; absent → undefined. */
declare const args: any;

/** The token budget (`--budget-tokens`). Frozen. */
declare const budget: Readonly<{
  /** The ceiling in output tokens, or `null` without one. */
  total: number | null;
  /** Output tokens spent by this run's agents so far. */
  spent(): number;
  /** `total - spent()`, or `Infinity` without a total. */
  remaining(): number;
}>;

declare function setTimeout(fn: (...a: any[]) => void, ms?: number, ...a: any[]): number;
declare function clearTimeout(handle: number): void;

/** Thrown by agent() (and parallel()/pipeline()) once the run's agent cap is reached. */
declare class WorkflowAgentCapError extends Error {}
/** Thrown by agent() once the token budget is spent. */
declare class WorkflowBudgetError extends Error {}
