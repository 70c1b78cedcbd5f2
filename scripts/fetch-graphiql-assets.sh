#!/usr/bin/env bash
# Fetch the GraphiQL page's browser assets from the npm registry, once, into the package
# (aipasta/graphiql/static) with their licences (aipasta/graphiql/licenses). The server
# serves these files itself; nothing is fetched at run time. Run it again only to move
# to other versions (edit the pins below), then review and commit the result.
#
# Needs npm (any version) and network access to the npm registry.
# GraphiQL 3.x is the last line with a UMD build loadable by a plain <script> tag
# (GraphiQL 4/5 are ESM-only and expect a bundler or import maps).
set -euo pipefail

REACT=18.2.0
REACT_DOM=18.2.0
GRAPHIQL=3.8.3
PLUGIN_EXPLORER=1.0.2

root="$(cd "$(dirname "$0")/.." && pwd)"
static="$root/aipasta/graphiql/static"
licenses="$root/aipasta/graphiql/licenses"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "react@$REACT" "react-dom@$REACT_DOM" "graphiql@$GRAPHIQL" \
  "@graphiql/plugin-explorer@$PLUGIN_EXPLORER" >/dev/null
for tarball in *.tgz; do
  mkdir "${tarball%.tgz}"
  tar xzf "$tarball" -C "${tarball%.tgz}"
done

mkdir -p "$static" "$licenses"
# A copy without its trailing `//# sourceMappingURL=` line: the maps are not shipped.
copy() {
  grep -v '^//# sourceMappingURL=' "$1" | sed -e 's|/\*# sourceMappingURL=[^*]*\*/||' >"$2"
}
copy "react-$REACT/package/umd/react.production.min.js" "$static/react.production.min.js"
copy "react-dom-$REACT_DOM/package/umd/react-dom.production.min.js" \
  "$static/react-dom.production.min.js"
copy "graphiql-$GRAPHIQL/package/graphiql.min.js" "$static/graphiql.min.js"
copy "graphiql-$GRAPHIQL/package/graphiql.min.css" "$static/graphiql.min.css"
copy "graphiql-plugin-explorer-$PLUGIN_EXPLORER/package/dist/index.umd.js" \
  "$static/plugin-explorer.umd.js"
copy "graphiql-plugin-explorer-$PLUGIN_EXPLORER/package/dist/style.css" \
  "$static/plugin-explorer.css"

cp "react-$REACT/package/LICENSE" "$licenses/react.LICENSE"
cp "react-dom-$REACT_DOM/package/LICENSE" "$licenses/react-dom.LICENSE"
cp "graphiql-$GRAPHIQL/package/LICENSE" "$licenses/graphiql.LICENSE"
# @graphiql/plugin-explorer's package has no LICENSE file; it is MIT (package.json) and
# comes from the same repository (graphql/graphiql) as GraphiQL, whose licence applies.
test "$(node -p "require('./graphiql-plugin-explorer-$PLUGIN_EXPLORER/package/package.json').license")" = MIT
cp "graphiql-$GRAPHIQL/package/LICENSE" "$licenses/graphiql-plugin-explorer.LICENSE"

{
  echo "# npm packages behind aipasta/graphiql/static (scripts/fetch-graphiql-assets.sh)"
  for spec in "react@$REACT" "react-dom@$REACT_DOM" "graphiql@$GRAPHIQL" \
    "@graphiql/plugin-explorer@$PLUGIN_EXPLORER"; do
    echo "$spec $(npm view "$spec" dist.integrity) license=$(npm view "$spec" license)"
  done
} >"$licenses/VERSIONS"
echo "assets written to $static, licences to $licenses"
