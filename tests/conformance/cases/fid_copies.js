export const meta = { name: "fid_copies", description: "parallel() and pipeline() hand back copies (issue 16.2)" };
const shared = { n: 1 };
const cyc = { name: "c" };
cyc.self = cyc;
class K { constructor() { this.k = 1; } m() { return 1; } }
const [a, b, c, d, e] = await parallel([
  () => shared,
  () => ({ s: shared, t: shared }),
  () => cyc,
  () => ({ f: () => 1, d: new Date(5), m: new Map([[1, 2]]), r: /x/, err: new Error("e"), k: new K(), u: undefined, nan: NaN, z: -0 }),
  () => [1, , 3],
]);
a.n = 2;
const seen = [];
const item = { v: 1 };
const piped = await pipeline([item], (x) => { seen.push(x); return x; }, (y, it) => { seen.push(y === it); return y; });
return {
  original: shared.n,
  sameRef: b.s === b.t,
  cycle: c.self === c,
  fnUndefined: d.f === undefined && "f" in d,
  date: JSON.stringify(d.d),
  map: JSON.stringify(d.m),
  re: JSON.stringify(d.r),
  err: JSON.stringify(d.err),
  klass: Object.getPrototypeOf(d.k) === Object.prototype && d.k.k === 1 && d.k.m === undefined,
  uKept: "u" in d && d.u === undefined,
  nan: Number.isNaN(d.nan),
  negZero: Object.is(d.z, -0),
  holes: e.length === 3 && 1 in e && e[1] === undefined,
  betweenStagesSame: seen[0] === item && seen[1] === true,
  pipelineCopy: piped[0] !== item && piped[0].v === 1,
};
