const y = 1;
export const meta = { name: "late", description: "not first" };
