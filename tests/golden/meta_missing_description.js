export const meta = { name: "x" };
