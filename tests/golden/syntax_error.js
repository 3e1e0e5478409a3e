export const meta = { name: "s", description: "syntax" };
const x = {;
