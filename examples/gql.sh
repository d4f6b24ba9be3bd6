# Helpers the walk-throughs source: one GraphQL request, and waiting for a condition.
# They read URL (the API) and TOKEN (an API token).

# gql QUERY [VARIABLES-JSON]: one GraphQL request; prints the response's data, or fails.
gql() {
  local body response
  body=$(jq -n --arg query "$1" --argjson variables "${2:-{\}}" \
    '{query: $query, variables: $variables}')
  response=$(curl -sS -X POST "$URL/graphql" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d "$body")
  if jq -e '.errors' <<<"$response" >/dev/null; then
    echo "GraphQL error: $response" >&2
    return 1
  fi
  jq '.data' <<<"$response"
}

# wait_for QUERY VARIABLES JQ-FILTER: poll until the filter prints true (at most 60 s).
wait_for() {
  for _ in $(seq 120); do
    [ "$(gql "$1" "$2" | jq -r "$3")" = true ] && return 0
    sleep 0.5
  done
  echo "gave up waiting for: $3" >&2
  return 1
}
