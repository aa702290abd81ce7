// Parses the AsyncAPI documents given as a JSON object {name: document} on stdin with the official parser
// (@asyncapi/parser, its default rules) and prints {name: [error or warning, ...]} as JSON.
import { Parser } from '@asyncapi/parser';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const parser = new Parser();
const found = {};
for (const [name, document] of Object.entries(JSON.parse(input))) {
  const { diagnostics } = await parser.parse(JSON.stringify(document));
  found[name] = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`);
}
console.log(JSON.stringify(found));
