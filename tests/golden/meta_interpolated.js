export const meta = { name: `n${1}`, description: "interpolated" };
