export const meta = { name: "childfail", description: "a child workflow whose agents, thunks and stages fail" };
log("child says hi");
console.log("child console");
const res = await parallel([() => agent("c-fail [fail]"), () => { throw new Error("thunk-throws"); }]);
const pipe = await pipeline([1], () => { throw new Error("stage-throws"); });
const single = await agent("c-single [fail]", { label: "single" });
return { res, pipe, single };
