-- POST /token with the load user's right password.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "username=" .. os.getenv("LOAD_USER") .. "&password=" .. os.getenv("LOAD_PASSWORD")
