// Runs one GraphQL operation through the reference graphql-sse client (distinct
// connections mode) and prints what it saw as one JSON line on stdout.
//
//   node sse_client.mjs '{"url": "...", "query": "...", "variables": {}, "headers": {},
//                         "stopAfter": 2}'
//
// Output: {"results": [...every result...], "completed": true} when the server completed
// the operation; with "stopAfter": N the client stops listening after N results
// ("completed": false, the request is aborted); a failure is {"error": {...}}.
import { createClient, NetworkError } from 'graphql-sse';

const spec = JSON.parse(process.argv[2]);
const client = createClient({
  url: spec.url,
  headers: spec.headers ?? {},
  retryAttempts: 0,
});

const results = [];
let completed = false;
let error = null;
try {
  const operation = client.iterate({ query: spec.query, variables: spec.variables ?? {} });
  completed = true;
  for await (const result of operation) {
    results.push(result);
    if (spec.stopAfter !== undefined && results.length >= spec.stopAfter) {
      completed = false;
      break; // returns the iterator: the client aborts its request
    }
  }
} catch (err) {
  completed = false;
  if (err instanceof NetworkError && err.response) {
    error = {
      status: err.response.status,
      retryAfter: err.response.headers.get('retry-after'),
      body: await err.response.json().catch(() => null),
    };
  } else if (Array.isArray(err)) {
    error = { graphql: err }; // graphql-sse rejects with the errors of an `error` event
  } else {
    error = { message: String(err?.message ?? err) };
  }
} finally {
  client.dispose();
}
process.stdout.write(JSON.stringify(error ? { results, error } : { results, completed }) + '\n');
