export const meta = { name: "fid_lenient", description: "argument leniency (issue 16.4) and unknown agent types (16.3)" };
const out = {};
out.a = await agent();
out.b = await agent(42);
out.c = await agent({ x: 1 });
phase(3);
phase("");
out.s1 = await agent("s1", { schema: { type: "object" } });
out.s2 = await agent('s2 [json={"a": "x", "zz": 1}]', { schema: { type: "object", properties: { a: { type: "string" } }, required: ["a", "zz"] } });
try { await agent("s3", { schema: { type: "array" } }); } catch (e) { out.bad = String(e); }
try { await agent("t", { agentType: "no-such-agent" }); } catch (e) { out.type = String(e); }
out.known = await agent("k", { agentType: "Explore" });
return out;
