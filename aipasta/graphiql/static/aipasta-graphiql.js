// The GraphiQL page's start-up, adapted from Strawberry's graphiql.html (MIT): the same
// editor, explorer plugin and URL sharing, with the API's own sign-in hint. Queries go
// over HTTP to this page's own URL and subscriptions over graphql-transport-ws to the
// same URL; the headers editor's JSON is sent with both (for a websocket, as the
// connection_init payload).
"use strict";

const EXAMPLE_QUERY = `# Welcome to AI Pasta's GraphiQL
#
# Sign in: open "Headers" below and enter
#
#     {"Authorization": "Bearer <your API key>"}
#
# Run Query:  Ctrl-Enter (or press the play button above)
# Auto Complete:  Ctrl-Space (or just start typing)

{
  models { nodes { id } }
}
`;

const parameters = {};
for (const entry of window.location.search.slice(1).split("&")) {
  const eq = entry.indexOf("=");
  if (eq >= 0) {
    parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(
      entry.slice(eq + 1),
    );
  }
}

function updateURL(data) {
  Object.assign(parameters, data);
  const newSearch =
    "?" +
    Object.keys(parameters)
      .filter((key) => Boolean(parameters[key]))
      .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
      .join("&");
  history.replaceState(null, null, newSearch);
}

const fetchURL = window.location.href.split("?")[0];
const subscriptionURL = (() => {
  const url = new URL(fetchURL);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  return url.toString();
})();

const fetcher = GraphiQL.createFetcher({ url: fetchURL, subscriptionUrl: subscriptionURL });
const explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();

function GraphiQLWithExplorer() {
  const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
  const [variables, setVariables] = React.useState(parameters.variables);
  const [headers, setHeaders] = React.useState(parameters.headers);

  return React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultEditorToolsVisibility: true,
    plugins: [explorerPlugin],
    query: query,
    variables: variables,
    headers: headers,
    onEditQuery: (newQuery) => {
      setQuery(newQuery);
      updateURL({ q: newQuery });
    },
    onEditVariables: (newVariables) => {
      setVariables(newVariables);
      updateURL({ variables: newVariables });
    },
    // Headers (API keys) stay out of the URL.
    onEditHeaders: setHeaders,
    inputValueDeprecation: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
  });
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQLWithExplorer),
);
