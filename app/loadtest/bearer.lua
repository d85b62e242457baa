-- GET with the load user's bearer token.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LOAD_TOKEN")
