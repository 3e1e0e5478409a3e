export const meta = {
  name: "review",
  description: "Review files in parallel, then summarise the findings",
  whenToUse: "A change touches several files and each needs an independent look",
  phases: [{ title: "Review", detail: "one agent per file" }, { title: "Summarise" }],
};

const files = Array.isArray(args?.files) ? args.files : ["src/lib.rs", "src/main.rs", "README.md"];

const finding = {
  type: "object",
  properties: {
    file: { type: "string" },
    severity: { enum: ["info", "warning", "error"] },
    summary: { type: "string" },
  },
  required: ["file", "severity", "summary"],
};

phase("Review");
const findings = await parallel(
  files.map((f) => () => agent(`Review ${f} for correctness and clarity. Report one finding.`, { schema: finding, label: `review ${f}` })),
);
log(`${findings.filter(Boolean).length} of ${files.length} reviews came back`);

phase("Summarise");
const summary = await agent(
  `Summarise these findings for the author in three sentences:\n${JSON.stringify(findings.filter(Boolean))}`,
  { label: "summary" },
);
return { findings: findings.filter(Boolean), summary };
