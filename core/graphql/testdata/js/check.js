// Checks synclayer's GraphQL schemas and queries with graphql-js, the
// reference implementation. Run by core/graphql's Go tests (TestMain):
//
//   node check.js --introspection-query   prints graphql-js's introspection query
//   node check.js < groups.json           checks [{introspection, queries: [...]}, ...]
//
// For each group it builds the schema from the introspection result
// (buildClientSchema), asserts it is valid (assertValidSchema) and
// validates every query against it. It prints what failed and exits 1.
"use strict";
const g = require("graphql");

if (process.argv[2] === "--introspection-query") {
  process.stdout.write(g.getIntrospectionQuery());
  process.exit(0);
}

let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const groups = JSON.parse(input);
  const failures = [];
  let queries = 0;
  groups.forEach((group, i) => {
    let schema;
    try {
      schema = g.buildClientSchema(group.introspection);
      g.assertValidSchema(schema);
    } catch (e) {
      failures.push(`schema ${i}: ${e.message}`);
      return;
    }
    for (const q of group.queries) {
      queries++;
      let doc;
      try {
        doc = g.parse(q);
      } catch (e) {
        failures.push(`schema ${i}: query does not parse: ${e.message}\n${q}`);
        continue;
      }
      const errs = g.validate(schema, doc);
      if (errs.length > 0) {
        failures.push(`schema ${i}: query invalid: ${errs.map((e) => e.message).join("; ")}\n${q}`);
      }
    }
  });
  if (failures.length > 0) {
    process.stdout.write(failures.join("\n\n") + "\n");
    process.exit(1);
  }
  process.stdout.write(`graphql-js ${g.version}: ${groups.length} schemas valid, ${queries} queries valid\n`);
});
