export const meta = { name: "fid_agent_types", description: "every built-in agent type of the reference is accepted (issue 30.1)" };
const out = {};
for (const t of ["general-purpose", "Explore", "Plan", "claude", "statusline-setup"]) {
  try { out[t] = await agent(`as ${t}`, { agentType: t }); } catch (e) { out[t] = String(e); }
}
try { await agent("x", { agentType: "explore" }); } catch (e) { out.caseMatters = String(e); }
return out;
