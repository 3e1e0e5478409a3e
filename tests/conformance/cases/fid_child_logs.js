export const meta = { name: "fid_child_logs", description: "a child workflow's runtime lines carry no [name] prefix; its log() and console lines do (issue 30.3)" };
return await workflow("childfail");
