export let meta = { name: "let", description: "let" };
