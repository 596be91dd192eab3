// Mermaid's own parser, for the tests of `meshkit graph`: one process reads many diagrams. Each line of stdin
// is a JSON string, a diagram's text; each line of stdout is what Mermaid made of it: {"error": message}, or
// the flowchart's nodes, subgraphs and edges with their labels as shown.
//
//   node toolchain/mermaid/parse.mjs DIR     # DIR: where toolchain/install-mermaid.sh installed the packages
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const require = createRequire(join(process.argv[2], "package.json"));
const { JSDOM } = require("jsdom");
// Mermaid sanitizes labels with DOMPurify, which needs a window even to parse.
const { window } = new JSDOM("");
globalThis.window = window;
globalThis.document = window.document;
const { default: mermaid } = await import(pathToFileURL(require.resolve("mermaid")).href);
mermaid.initialize({}); // registers the diagram types, with the default config

// A label as shown: Mermaid keeps its entity codes (#quot;) as placeholders until the diagram is drawn, then
// makes them HTML entities (its decodeEntities); labels are HTML, with <br/> between lines.
function shown(text) {
  const html = text.replaceAll("ﬂ°°", "&#").replaceAll("ﬂ°", "&").replaceAll("¶ß", ";");
  const element = window.document.createElement("div");
  element.innerHTML = html.replace(/<br\s*\/?>/gi, "\n");
  return element.textContent;
}

async function read(text) {
  try {
    // What mermaid.parse() runs, keeping the result: directives and comments taken out (one in a label shows as
    // a changed label), then the flowchart's parser.
    const { db } = await mermaid.mermaidAPI.getDiagramFromText(text);
    return {
      nodes: [...db.getVertices().values()].map((node) => ({ id: node.id, label: shown(node.text) })),
      subgraphs: db.getSubGraphs().map((sub) => ({ id: sub.id, label: shown(sub.title), nodes: sub.nodes })),
      edges: db.getEdges().map((edge) => ({ source: edge.start, target: edge.end, label: shown(edge.text ?? "") })),
    };
  } catch (error) {
    return { error: String(error?.message ?? error) };
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(JSON.stringify(await read(JSON.parse(line))) + "\n");
}
