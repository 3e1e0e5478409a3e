export const meta = { name: "i", description: "import()" };
const fs = await import("fs");
