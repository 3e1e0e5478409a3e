export const meta = { name: "ts", description: "typescript" };
const n: number = 1;
