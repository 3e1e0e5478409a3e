export const meta = { name: "p", description: "d", __proto__: { polluted: true } };
