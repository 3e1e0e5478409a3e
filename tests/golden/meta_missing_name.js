export const meta = {
  description: "no name",
};
