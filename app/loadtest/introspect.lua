-- POST /introspect of the load user's access token (LOAD_TOKEN), as a
-- resource server asks with its introspection secret (LOAD_INTROSPECTION).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LOAD_INTROSPECTION")
wrk.body = "token=" .. os.getenv("LOAD_TOKEN")
