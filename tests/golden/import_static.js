export const meta = { name: "i", description: "import" };
import fs from "fs";
