export const meta = {
  name: "triage",
  description: "Classify issues, then draft a reply for each one that needs it (a pipeline: no barrier between stages)",
  phases: [{ title: "Triage" }],
};

const issues = args?.issues ?? ["crash on empty input", "typo in README", "slow startup on large repos"];
const label = { type: "object", properties: { kind: { enum: ["bug", "docs", "perf"] }, urgent: { type: "boolean" } }, required: ["kind", "urgent"] };

phase("Triage");
const results = await pipeline(
  issues,
  (issue) => agent(`Classify this issue: ${issue}`, { schema: label, label: `classify: ${issue}` }),
  (cls, issue) => (cls.urgent ? agent(`Draft a reply to the ${cls.kind} report "${issue}"`, { label: `reply: ${issue}` }) : "no reply needed"),
);
return issues.map((issue, i) => ({ issue, reply: results[i] }));
