#!/usr/bin/env node
// Compiles contracts/src with solc-js (standard JSON) and writes the ABI and bytecode
// artifacts that the Python package ships, plus a manifest of source hashes that the
// test suite uses to detect stale artifacts. `--check` recompiles and fails if the
// committed artifacts differ from a fresh build.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SRC = join(ROOT, "contracts", "src");
const OUT = join(ROOT, "exchange", "artifacts");
const NODE_MODULES = join(ROOT, "node_modules");

export const SETTINGS = {
  optimizer: { enabled: true, runs: 1000 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function solidityFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return solidityFiles(path);
    return entry.name.endsWith(".sol") ? [path] : [];
  });
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

function compile() {
  const sources = {};
  for (const file of solidityFiles(SRC).sort()) {
    sources[relative(ROOT, file)] = { content: readFileSync(file, "utf8") };
  }
  const imported = {};
  const findImports = (path) => {
    const file = join(NODE_MODULES, path);
    // Import paths are node_modules paths (solady's with its src/), so the manifest's keys
    // name the files under node_modules that the Python test re-hashes.
    const allowed = ["@openzeppelin/", "solady/src/"].some((prefix) => path.startsWith(prefix));
    if (!allowed || !existsSync(file)) return { error: `not found: ${path}` };
    imported[path] = readFileSync(file, "utf8");
    return { contents: imported[path] };
  };
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  // 2394: solc's notice that transient storage needs care; OpenZeppelin's guard is the safe use.
  for (const message of output.errors ?? []) {
    if (message.errorCode !== "2394") console.error(message.formattedMessage);
  }
  if (errors.length) process.exit(1);

  const manifest = {
    compiler: solc.version(),
    settings: SETTINGS,
    sources: Object.fromEntries(
      [...Object.entries(sources).map(([p, s]) => [p, s.content]), ...Object.entries(imported)]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([path, content]) => [path, sha256(content)]),
    ),
  };
  const artifacts = {};
  for (const [sourceName, contracts] of Object.entries(output.contracts)) {
    if (!sourceName.startsWith("contracts/")) continue;
    for (const [contractName, contract] of Object.entries(contracts)) {
      if (!contract.evm.bytecode.object) continue; // abstract modules: their ABI is in Cove's
      artifacts[contractName] = {
        contractName,
        sourceName,
        abi: contract.abi,
        bytecode: "0x" + contract.evm.bytecode.object,
        deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
      };
    }
  }
  return { manifest, artifacts };
}

const serialize = (value) => JSON.stringify(value, null, 2) + "\n";

function main() {
  const check = process.argv.includes("--check");
  const { manifest, artifacts } = compile();
  const files = { "manifest.json": manifest };
  for (const [name, artifact] of Object.entries(artifacts)) files[`${name}.json`] = artifact;
  const stale = [];
  for (const [file, value] of Object.entries(files)) {
    const path = join(OUT, file);
    if (check) {
      if (!existsSync(path) || readFileSync(path, "utf8") !== serialize(value)) stale.push(file);
    } else {
      mkdirSync(OUT, { recursive: true });
      writeFileSync(path, serialize(value));
    }
  }
  if (check && stale.length) {
    console.error(`stale artifacts: ${stale.join(", ")}; run \`npm run compile\` and commit exchange/artifacts`);
    process.exit(1);
  }
  console.log(`${check ? "checked" : "wrote"} ${Object.keys(files).length} artifacts (solc ${solc.version()})`);
}

main();
