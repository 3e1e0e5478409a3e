export const meta = { name: NAME, description: "identifier" };
const NAME = "x";
