export const meta = {
  name: "code-review",
  description: "Review the working tree's diff from several angles, verify each finding adversarially, report only the survivors",
  whenToUse: "Before committing or opening a pull request: a second look at uncommitted changes",
  phases: [
    { title: "Diff", detail: "one agent reads the change" },
    { title: "Review", detail: "one agent per angle" },
    { title: "Verify", detail: "each finding challenged by an independent agent" },
    { title: "Report" },
  ],
};

// Agents do the reading (git, files); the script only routes their answers.
const angles = (Array.isArray(args?.angles) && args.angles.length ? args.angles : [
  "correctness: logic errors, off-by-one, wrong conditions, unhandled cases",
  "security: injection, unchecked input, secrets, unsafe file or process handling",
  "concurrency and resources: races, deadlocks, leaks, missing cleanup",
  "tests: changed behaviour without a test, tests that cannot fail",
]).map(String);

const clean = (s) => String(s).replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, " ");

phase("Diff");
const diff = await agent(
  "Run `git diff HEAD` (and `git status --short` for new files) in the current repository. Summarise the change: which files, what each change does. Quote the changed hunks that matter, with file and line.",
  { label: "read the diff", agentType: "Explore" },
);
if (!diff) return { findings: [], note: "the diff could not be read (does the backend's agent have git and file access?)" };

const finding = {
  type: "object",
  properties: {
    findings: {
      type: "array",
      items: {
        type: "object",
        properties: { file: { type: "string" }, line: { type: "integer" }, problem: { type: "string" }, why: { type: "string" } },
        required: ["file", "problem", "why"],
      },
    },
  },
  required: ["findings"],
};

phase("Review");
const reviews = await parallel(angles.map((angle) => () => agent(
  `Review this change for ${angle}. Report only problems you can point to in the diff; an empty list is a fine answer.\n\nThe change:\n${diff}`,
  { schema: finding, label: `review: ${clean(angle).split(":")[0]}` },
)));
const candidates = reviews.filter(Boolean).flatMap((r) => r.findings || []);
log(`${candidates.length} candidate finding(s) from ${angles.length} angle(s)`);

const verdict = {
  type: "object",
  properties: { holds: { type: "boolean" }, reason: { type: "string" } },
  required: ["holds", "reason"],
};

phase("Verify");
const verified = await parallel(candidates.map((f) => () => agent(
  `Try to refute this review finding. Read ${clean(f.file)} yourself. Say holds: false unless the problem is real and the diff introduces or touches it.\n\nFinding: ${clean(f.problem)}\nWhy: ${clean(f.why)}`,
  { schema: verdict, label: `verify: ${clean(f.file)}`.slice(0, 60) },
)));
const survivors = candidates.filter((_, i) => verified[i] && verified[i].holds === true);

phase("Report");
log(`${survivors.length} of ${candidates.length} finding(s) survived verification`);
return { findings: survivors, dropped: candidates.length - survivors.length };
