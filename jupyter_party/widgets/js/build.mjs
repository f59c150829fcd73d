// Bundle the widget modules into ESM files anywidget loads (no CDN at run time).
// `npm run build` writes ../static/; `node build.mjs DIR` writes DIR (the freshness test).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2] ? path.resolve(process.argv[2]) : path.join(here, "..", "static");

await build({
  entryPoints: ["console", "doc", "host", "ui"].map((name) => path.join(here, "src", `${name}.js`)),
  outdir,
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});
