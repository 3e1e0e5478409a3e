export const meta = {
  name: "deep-research",
  description: "Research a question on the web: scope it, search, fetch and extract claims, cross-check every claim with three independent verifiers, and write a cited synthesis",
  whenToUse: "A question whose answer needs several sources and should not repeat unverified claims",
  phases: [
    { title: "Scope" },
    { title: "Search and extract", detail: "a pipeline per sub-question" },
    { title: "Verify", detail: "three independent votes per claim" },
    { title: "Synthesis" },
  ],
};

// Web access is the agents' (their backend must give them web search and fetch: the `claude`
// backend with WebSearch and WebFetch allowed); the script never touches the network.
const question = typeof args === "string" ? args : String(args?.question ?? "");
if (!question) throw new TypeError('deep-research needs a question: --args \'"your question"\'');
log("deep-research: its agents need web search and fetch (the claude backend with WebSearch/WebFetch allowed); without them the sources will be empty");

// Strings from the web reach labels and logs without control or bidi characters.
const clean = (s) => String(s).replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, " ").trim();

phase("Scope");
const scope = await agent(
  `Break this research question into 2 to 5 sub-questions that together answer it. Question: ${question}`,
  { schema: { type: "object", properties: { subquestions: { type: "array", items: { type: "string" } } }, required: ["subquestions"] }, label: "scope" },
);
const subs = (scope?.subquestions || [question]).slice(0, 5).map(clean);

const sources = { type: "object", properties: { urls: { type: "array", items: { type: "string" } } }, required: ["urls"] };
const claims = {
  type: "object",
  properties: { claims: { type: "array", items: { type: "object", properties: { claim: { type: "string" }, url: { type: "string" }, quote: { type: "string" } }, required: ["claim", "url"] } } },
  required: ["claims"],
};

phase("Search and extract");
const seen = new Set();
const extracted = await pipeline(
  subs,
  (sub) => agent(`Search the web for: ${sub}. Return the 3 to 5 most authoritative source URLs.`, { schema: sources, label: `search: ${sub}`.slice(0, 60) }),
  (found) => {
    // De-duplicate across sub-questions: a source is fetched once.
    const fresh = (found?.urls || []).map(clean).filter((u) => /^https?:\/\//.test(u) && !seen.has(u));
    fresh.forEach((u) => seen.add(u));
    return fresh.length ? fresh : null;
  },
  (urls, sub) => agent(
    `Fetch each of these pages and extract the factual claims that answer "${sub}", each with its URL and a short exact quote:\n${urls.join("\n")}`,
    { schema: claims, label: `extract: ${sub}`.slice(0, 60) },
  ),
);
const all = extracted.filter(Boolean).flatMap((e) => e.claims || []).map((c) => ({ claim: clean(c.claim), url: clean(c.url), quote: clean(c.quote || "") }));
log(`${all.length} claim(s) from ${seen.size} source(s)`);

const vote = { type: "object", properties: { supported: { type: "boolean" }, reason: { type: "string" } }, required: ["supported"] };

phase("Verify");
const votes = await parallel(all.flatMap((c, i) => [0, 1, 2].map((v) => () => agent(
  `Independently check this claim. Open ${c.url} and, if you can, one other source. Is the claim supported as stated?\nClaim: ${c.claim}\nQuoted: ${c.quote}`,
  { schema: vote, label: `verify ${i + 1}.${v + 1}` },
))));
const kept = all.filter((_, i) => votes.slice(i * 3, i * 3 + 3).filter((v) => v?.supported === true).length >= 2);
log(`${kept.length} of ${all.length} claim(s) survived cross-checking (2 of 3 votes)`);

phase("Synthesis");
const answer = await agent(
  `Answer the question using only these verified claims, citing each by its URL in brackets. Say what remains unknown.\n\nQuestion: ${question}\n\nClaims:\n${kept.map((c) => `- ${c.claim} [${c.url}]`).join("\n")}`,
  { label: "synthesis" },
);
return { question, answer, claims: kept, dropped: all.length - kept.length, sources: [...seen] };
