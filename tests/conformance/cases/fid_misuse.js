export const meta = { name: "fid_misuse", description: "misuse messages, first line as the reference (issue 16.5)" };
const out = {};
// The whole message: the reference's, with no detail after it (issue 30.4).
const first = (e) => String(e);
try { await parallel("x"); } catch (e) { out.parNotArray = first(e); }
try { await parallel([agent("p")]); } catch (e) { out.parPromise = first(e); }
try { await pipeline("x", (v) => v); } catch (e) { out.pipeNotArray = first(e); }
try { await pipeline([1], 3); } catch (e) { out.pipeStage = first(e); }
return out;
