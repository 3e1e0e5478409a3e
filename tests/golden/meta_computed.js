export const meta = { name: "a" + "b", description: "computed" };
return 1;
