export const meta = { name: "h", description: "d", phases: [{ title: "A" }, , { title: "B" }] };
