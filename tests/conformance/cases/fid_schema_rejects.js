export const meta = { name: "fid_schema_rejects", description: "a schema never met rejects (issue 16.1)" };
const s = { type: "object", properties: { n: { type: "integer" } }, required: ["n"] };
const out = {};
try { out.v = await agent('count [json={"n": "three"}]', { schema: s, label: "bad" }); } catch (e) { out.caught = String(e); }
out.par = await parallel([() => agent('count [json={"n": "x"}]', { schema: s, label: "p" }), () => agent("fine")]);
return out;
