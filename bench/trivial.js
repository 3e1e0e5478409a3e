export const meta = { name: "trivial", description: "start-up benchmark: no agents" };
log("hello");
return { ok: true };
